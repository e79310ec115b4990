"""What every entry point shares: config flags and one-line user errors."""

from __future__ import annotations

import contextlib
import logging as pylogging
import sys

from absl import flags, logging

from tfft.errors import TfftError


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


@contextlib.contextmanager
def user_errors(program: str, argv: list[str]):
    """Turns a :class:`TfftError` into ``program: error: message`` and exit status 1.

    Also rejects stray positional arguments (every option is a flag).
    """
    logging.set_verbosity(logging.INFO)
    # TensorFlow's own INFO lines (e.g. one per checkpoint write) are noise here.
    pylogging.getLogger("tensorflow").setLevel(pylogging.WARNING)
    try:
        if len(argv) > 1:
            raise TfftError(f"unexpected arguments {argv[1:]}; all options are --flags (see --help)")
        yield
    except TfftError as error:
        sys.stderr.write(f"{program}: error: {error}\n")
        sys.exit(1)
