"""A quiet start for the entry points: library notices meant for their developers stay out.

:func:`quiet_start` runs when :mod:`tfft.cli` is imported, before TensorFlow is. The
environment defaults (``TF_CPP_MIN_LOG_LEVEL=2``, ``TRANSFORMERS_NO_ADVISORY_WARNINGS=1``)
are set by ``import tfft`` (:data:`tfft.ENVIRONMENT_DEFAULTS`), for the Python API too.

- TensorFlow 2.20+ writes its first C++ lines through absl before absl's logging is set
  up, which ignores ``TF_CPP_MIN_LOG_LEVEL``: absl's ``WARNING: All log messages before
  absl::InitializeLog() is called are written to STDERR``, then ``I0000 ... port.cc]
  oneDNN custom operations are on ...`` and, from the ``tensorflow`` wheel on a machine
  without an NVIDIA driver, ``cudart_stub.cc] Could not find cuda drivers`` (each once
  per TensorFlow library loaded). :func:`import_tensorflow` drops the lines that
  ``TF_CPP_MIN_LOG_LEVEL`` would have dropped.
- On such a machine the ``tensorflow`` wheel's first use of the devices logs
  ``E0000 ... failed call to cuInit: ... UNKNOWN ERROR (303)``: no driver, so no GPU, is
  the normal state of a CPU machine, not an error. With no driver found, the devices are
  listed once during the import too, and at ``TF_CPP_MIN_LOG_LEVEL`` 2 or more that line
  is dropped. (Listing physical devices leaves them configurable: logical CPU devices
  and strategies are set up later, as TensorFlow documents.)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping

#: A C++ log line of absl (and so TensorFlow): severity letter, MMDD, time, thread, file:line].
_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+\] ")
#: What ``TF_CPP_MIN_LOG_LEVEL`` filters from each level on.
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_CUDA_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = "failed call to cuInit"


def min_log_level(environ: MutableMapping[str, str] = os.environ) -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as a number (0, all lines, where unset or not a number)."""
    try:
        return int(environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_start_lines(text: str, level: int) -> str:
    """The lines of TensorFlow's start-up output that ``TF_CPP_MIN_LOG_LEVEL=level`` lets through.

    Other output (Python warnings, messages of other libraries) is kept.
    """
    no_driver = _NO_CUDA_DRIVER in text
    kept = []
    for line in text.splitlines(keepends=True):
        if line.startswith(_ABSL_BANNER):
            severity = _SEVERITY["W"]
        elif match := _LOG_LINE.match(line):
            severity = _SEVERITY[match.group(1)]
            if no_driver and _CUINIT_FAILED in line:
                severity = _SEVERITY["W"]  # No driver: a CPU machine, not a failure.
        else:
            severity = len(_SEVERITY)
        if severity >= level:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[Callable[[], str]]:
    """Holds what the block writes to stderr, C++ libraries included, then writes what is kept.

    What :func:`filter_start_lines` keeps is written, or all of it if the block raises.

    Yields:
        A function that returns what the block has written so far.
    """
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # No stderr to filter.
        yield lambda: ""
        return
    failed = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield lambda: _read_from_start(held.fileno())
            failed = False
        finally:
            _flush_stderr()  # Python's own writes go to the held file too.
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            kept = text if failed else filter_start_lines(text, level)
            if kept:
                os.write(2, kept.encode("utf-8"))


def _flush_stderr() -> None:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()


def _read_from_start(fd: int) -> str:
    """What the file of ``fd`` holds, leaving its offset (shared with stderr's) where it is."""
    if not hasattr(os, "pread"):
        return ""
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")


def import_tensorflow(level: int) -> None:
    """Imports TensorFlow under :func:`filtered_stderr` (where it finds no CUDA driver, lists the devices)."""
    if "tensorflow" in sys.modules or level <= 0:
        return
    with filtered_stderr(level) as written:
        import tensorflow as tf

        if _NO_CUDA_DRIVER in written():
            with contextlib.suppress(Exception):  # Only to have its output filtered here.
                tf.config.list_physical_devices()


def quiet_start() -> None:
    """Imports TensorFlow with its start-up lines filtered (as ``TF_CPP_MIN_LOG_LEVEL`` asks)."""
    import_tensorflow(min_log_level())
