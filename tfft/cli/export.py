"""``tfft-export``: turn a training model_dir into a SavedModel for TF Serving.

Example:
    tfft-export --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/export/1
"""

from __future__ import annotations

from absl import app, flags, logging

from tfft.cli.common import user_errors
from tfft.export import export_saved_model

flags.DEFINE_string("model_dir", None, "Directory written by tfft-train.")
flags.DEFINE_string("export_dir", None, "New directory for the SavedModel.")
flags.DEFINE_string(
    "checkpoint", "", "final, best, latest or a .weights.h5 path (default: final, else latest)."
)
flags.DEFINE_enum("format", "saved_model", ["saved_model"], "Export format.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    """Exports the model and prints where it went."""
    with user_errors("tfft-export", argv):
        path = export_saved_model(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint)
        logging.info("exported SavedModel to %s", path)
        print(f"SavedModel written to {path}")


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
