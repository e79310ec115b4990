"""What every entry point shares: config flags, ``--help`` and one-line user errors."""

from __future__ import annotations

import contextlib
import logging as pylogging
import os
import sys

from absl import app, flags, logging

from tfft.errors import TfftError, TrainingInterrupted


def define_config_flags() -> None:
    """``--config_file`` (repeatable) and ``--params_override``, as in Model Garden."""
    flags.DEFINE_multi_string(
        "config_file", [], "YAML config file; repeat the flag to merge several (later wins)."
    )
    flags.DEFINE_multi_string(
        "params_override", [],
        "Comma-separated dotted key=value overrides applied after the config files, "
        "e.g. trainer.epochs=2,task.max_seq_length=64; repeatable (later wins).",
    )


def run_main(main, module_name: str) -> None:
    """Runs ``main`` with absl, ``--help`` listing the flags of ``module_name``.

    absl's ``--help`` lists the key flags of the program's main module, which is the
    console script (``.venv/bin/tfft-train``), not the module defining the flags; their
    flags become its key flags here.
    """
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)


@contextlib.contextmanager
def user_errors(program: str, argv: list[str]):
    """Turns a :class:`TfftError` into ``program: error: message`` and exit status 1.

    Also rejects stray positional arguments (every option is a flag), and ends a
    progress bar's line before any error is written.
    """
    logging.set_verbosity(logging.INFO)
    # TensorFlow's own INFO lines (e.g. one per checkpoint write) are noise here: those of its
    # logger, and those it writes through absl's (e.g. "Sharding callback duration" per backup).
    pylogging.getLogger("tensorflow").setLevel(pylogging.WARNING)
    pylogging.getLogger("absl").addFilter(_without_tensorflow_info)
    try:
        if len(argv) > 1:
            raise TfftError(f"unexpected arguments {argv[1:]}; all options are --flags (see --help)")
        yield
    except TfftError as error:
        _end_progress_line()
        sys.stderr.write(f"{program}: error: {error}\n")
        sys.exit(1)
    except TrainingInterrupted as interruption:
        _end_progress_line()
        sys.stderr.write(f"{program}: interrupted: {interruption}\n")
        sys.exit(interruption.exit_status)
    except BaseException:
        _end_progress_line()
        raise


def _without_tensorflow_info(record: pylogging.LogRecord) -> bool:
    """A logging filter that drops the records below WARNING that TensorFlow's own code logs."""
    tensorflow = sys.modules.get("tensorflow")
    if record.levelno >= pylogging.WARNING or tensorflow is None or not tensorflow.__file__:
        return True
    return not record.pathname.startswith(os.path.dirname(tensorflow.__file__) + os.sep)


def _end_progress_line() -> None:
    """Ends the line of a progress bar being drawn (if training has started), so an error starts a line."""
    callbacks = sys.modules.get("tfft.training.callbacks")
    if callbacks is not None:
        callbacks.end_progress_line()
