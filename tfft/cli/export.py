"""``tfft-export``: turn a training model_dir into a SavedModel or a Hugging Face folder.

Example:
    tfft-export --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/export/1
    tfft-export --format=hf --model_dir=/tmp/sst2 --export_dir=/tmp/sst2/hf
    tfft-export --lora_only --model_dir=/tmp/sst2_lora --export_dir=/tmp/sst2_lora/adapter
"""

from __future__ import annotations

from absl import flags, logging

from tfft.cli.common import run_main, user_errors
from tfft.exporting import FORMATS, export_hf, export_lora_adapter, export_saved_model

flags.DEFINE_string("model_dir", None, "Directory written by tfft-train.")
flags.DEFINE_string("export_dir", None, "New directory for the exported model.")
flags.DEFINE_string(
    "checkpoint", "", "final, best, latest or a .weights.h5 path (default: final, else latest)."
)
flags.DEFINE_enum(
    "format", "saved_model", list(FORMATS),
    "saved_model: TF SavedModel for TF Serving; hf: Hugging Face folder (config.json, "
    "model.safetensors, tokenizer) for PyTorch transformers.",
)
flags.DEFINE_boolean(
    "lora_only", False, "For a LoRA run (trainer.lora_rank > 0): write just the adapter, as a PEFT folder "
    "(adapter_model.safetensors, adapter_config.json, tokenizer), instead of a model.",
)
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    """Exports the model and prints where it went."""
    with user_errors("tfft-export", argv):
        if FLAGS.lora_only:
            path = export_lora_adapter(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint)
            what = "LoRA adapter (PEFT)"
        elif FLAGS.format == "hf":
            path = export_hf(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint)
            what = "Hugging Face model"
        else:
            path = export_saved_model(FLAGS.model_dir, FLAGS.export_dir, FLAGS.checkpoint)
            what = "SavedModel"
        logging.info("exported %s to %s", what, path)
        print(f"{what} written to {path}")


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
