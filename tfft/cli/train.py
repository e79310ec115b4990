r"""``tfft-train``: fine-tune, evaluate or predict with one config.

Example:
    tfft-train --config_file=configs/glue/sst2.yaml --model_dir=/tmp/sst2 \\
        --mode=train_and_eval --params_override=trainer.epochs=1
    tfft-train --config_file=configs/glue/sst2.yaml --model_dir=/tmp/sst2 --tpu=local
    tfft-train --config_file=configs/glue/sst2.yaml --print_config > my_sst2.yaml
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from tfft import modeling
from tfft.cli import common
from tfft.cli.common import define_config_flags, run_main, user_errors
from tfft.config import ExperimentConfig, build_config, to_commented_yaml
from tfft.tasks import TASKS
from tfft.training.experiment import MODES, Experiment

define_config_flags()
flags.adopt_module_key_flags(common)
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
flags.DEFINE_bool(
    "print_config", False,
    "Print the resolved config (config files, overrides and --tpu; for eval/predict the run's "
    "params.yaml as --mode uses it) as YAML with each key's doc, then exit without running. "
    "Training modes need no --model_dir then.",
)
#: Modes that read the config of a trained model_dir (params.yaml) rather than build one.
RUN_CONFIG_MODES = ("eval", "predict")
flags.register_multi_flags_validator(
    ["model_dir", "print_config", "mode"],
    lambda values: bool(values["model_dir"])
    or (values["print_config"] and values["mode"] not in RUN_CONFIG_MODES),
    message="--model_dir must have a value (only --print_config of a training mode runs without it)",
)
FLAGS = flags.FLAGS


def resolve_config(mode: str, config_files: list[str], params_override: list[str], tpu: str = "",
                   model_dir: str | None = None) -> ExperimentConfig:
    """The config that ``mode`` runs with: the files and overrides, or for eval/predict the run's.

    Args:
        mode: One of :data:`~tfft.training.experiment.MODES`.
        config_files: ``--config_file`` values, applied in order.
        params_override: ``--params_override`` values, applied after the files.
        tpu: ``--tpu`` (sets ``runtime.strategy=tpu`` and ``runtime.tpu`` last), or "".
        model_dir: The run's directory (eval/predict read its ``params.yaml``; eval of a model_dir
            without one evaluates ``task.init_checkpoint`` as the config files give it).
    """
    overrides: list = list(params_override)
    if tpu:
        overrides.append({"runtime": {"strategy": "tpu", "tpu": tpu}})
    written = (Path(model_dir or "") / modeling.PARAMS_FILE).is_file()
    fresh_eval = mode == "eval" and config_files and not written
    if mode in RUN_CONFIG_MODES and not fresh_eval:
        return modeling.load_run_config(Path(model_dir), config_files, overrides)
    return build_config(config_files, overrides)


def config_text(config: ExperimentConfig, mode: str) -> str:
    """``--print_config``'s output: the config as commented YAML that loads back with --config_file."""
    header = (f"Resolved config of tfft-train --mode={mode}; run it with --config_file=THIS_FILE.\n"
              "Each key's comment says what it does.")
    return to_commented_yaml(config, header)


def main(argv):
    """Builds the config and runs the experiment (or prints the config)."""
    with user_errors("tfft-train", argv):
        config = resolve_config(FLAGS.mode, FLAGS.config_file, FLAGS.params_override, FLAGS.tpu,
                                FLAGS.model_dir)
        if FLAGS.print_config:
            print(config_text(config, FLAGS.mode), end="")
            return
        Experiment(config, Path(FLAGS.model_dir)).run(FLAGS.mode, FLAGS.checkpoint, FLAGS.output_format)


def run():
    """Console-script entry point."""
    run_main(main, __name__)


if __name__ == "__main__":
    run()
