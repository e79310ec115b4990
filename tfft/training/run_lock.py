"""One training run per model_dir: a lock file that names its holder.

Two runs writing one model_dir would mix their checkpoints, backups and results. A
run holds ``model_dir/.tfft-train.lock`` (an exclusive ``flock`` on it, which the
kernel drops when the process dies, and a record of host, pid and start time for the
message). A second run stops with a one-line error naming the holder. A lock file
left by a killed run on the same host is not locked any more, so it is taken over; one
from another host cannot be checked from here, so the message says which file to
delete once that run is known to be gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from tfft.errors import TfftError

LOCK_FILE = ".tfft-train.lock"


def _holder_text(record: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, started {started}"


def _read_record(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Someone else's process.
        return True
    return True


def _try_lock(fd: int) -> bool:
    """An exclusive ``flock`` on ``fd`` without waiting; False if another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:  # A filesystem without flock: the record alone decides.
        if error.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        record = _read_record(fd)
        return not record or (record.get("host") == socket.gethostname() and not _alive(record.get("pid", 0)))
    return True


def _in_use(path: Path, record: dict) -> TfftError:
    return TfftError(
        f"model_dir '{path.parent}' is in use by another tfft-train ({_holder_text(record)}); wait for "
        f"it to finish or stop it, or choose another --model_dir (if that run is gone, delete '{path}')"
    )


@contextlib.contextmanager
def run_lock(folder: Path):
    """Holds the lock of ``folder`` (created if missing) for the duration of the block.

    Raises:
        TfftError: if another run holds it (or one on another host left it behind).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            record = _read_record(fd)
            os.close(fd)
            raise _in_use(path, record)
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # Its holder removed it as we locked it.
            same_file = False
        if same_file:
            break
        os.close(fd)
    try:
        previous = _read_record(fd)
        if previous.get("host", host) != host:
            raise _in_use(path, previous)
        if previous:
            logging.warning("taking over the lock left by a run that is gone (%s)", _holder_text(previous))
        record = {"host": host, "pid": os.getpid(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
