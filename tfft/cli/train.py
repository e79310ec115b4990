r"""``tfft-train``: fine-tune, evaluate or predict with one config.

Example:
    tfft-train --config_file=configs/glue/sst2.yaml --model_dir=/tmp/sst2 \\
        --mode=train_and_eval --params_override=trainer.epochs=1
    tfft-train --config_file=configs/glue/sst2.yaml --model_dir=/tmp/sst2 --tpu=local
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from tfft import modeling
from tfft.cli.common import define_config_flags, user_errors
from tfft.config import build_config
from tfft.tasks import TASKS
from tfft.training.experiment import MODES, Experiment

define_config_flags()
flags.DEFINE_string("model_dir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_enum("mode", "train_and_eval", MODES, "What to run.")
flags.DEFINE_string(
    "checkpoint", "",
    "For eval/predict: final, best, latest or a .weights.h5 path (default: final, else latest).",
)
flags.DEFINE_string(
    "output_format", "",
    "For predict: the predictions file's format (default: the task's first). "
    + "; ".join(f"{name}: {', '.join(task.output_formats)}" for name, task in sorted(TASKS.items())) + ".",
)
flags.DEFINE_string(
    "tpu", "",
    "Train on this Cloud TPU: 'local' on a TPU VM, the TPU's name, or grpc://host:8470 "
    "(sets runtime.strategy=tpu and runtime.tpu, after the config files and overrides).",
)
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def main(argv):
    """Builds the config and runs the experiment."""
    with user_errors("tfft-train", argv):
        model_dir = Path(FLAGS.model_dir)
        overrides = list(FLAGS.params_override)
        if FLAGS.tpu:
            overrides.append({"runtime": {"strategy": "tpu", "tpu": FLAGS.tpu}})
        if FLAGS.mode in ("eval", "predict"):
            config = modeling.load_run_config(model_dir, FLAGS.config_file, overrides)
        else:
            config = build_config(FLAGS.config_file, overrides)
        Experiment(config, model_dir).run(FLAGS.mode, FLAGS.checkpoint, FLAGS.output_format)


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
