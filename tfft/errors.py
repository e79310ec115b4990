"""The exceptions entry points turn into one line: user errors and interrupted training."""

import errno
import shutil
from pathlib import Path


class TfftError(ValueError):
    """A user-facing error: bad input, config or checkpoint.

    The message is a single line that names the offending input (file and line,
    config key or checkpoint) and says what to do. Entry points print it without a
    traceback and exit non-zero.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal; a backup to resume from was written (if any path is given).

    Attributes:
        signal_number: The signal received.
        backup: The backup folder written, or None.
    """

    def __init__(self, signal_number: int, backup, message: str):
        super().__init__(message)
        self.signal_number = signal_number
        self.backup = backup

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal (143: SIGTERM, 130: SIGINT)."""
        return 128 + self.signal_number


def located(source: str, line: int | None) -> str:
    """Formats an input location as ``file:line`` (or just ``file``)."""
    return f"{source}:{line}" if line else source


def reason(error: BaseException) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


#: ``errno`` values of a full disk or an exhausted quota.
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(error: BaseException) -> bool:
    """Whether a failed write ran out of disk space or quota (Python's or TensorFlow's error)."""
    if isinstance(error, OSError) and error.errno in OUT_OF_SPACE:
        return True
    text = str(error)
    return any(name in text for name in ("No space left on device", "Disk quota exceeded"))


def out_of_space(path: Path, needed: int) -> TfftError:
    """The one-line error for ``path`` that could not be written for lack of space."""
    path = Path(path)
    folder = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    return TfftError(
        f"cannot write '{path}': no space left on its disk (needs about {_mib(needed)}, "
        f"{_mib(free)} free); free some space and rerun the same command (the earlier files are intact)"
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
