"""One training run per model_dir: a second one stops, a dead one's lock is taken over."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest
from conftest import REPO, train_files

from tfft.errors import TfftError
from tfft.training.run_lock import LOCK_FILE, run_lock

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from tfft.training.run_lock import run_lock\n"
    "with run_lock(Path(sys.argv[1])):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def hold_lock(model_dir) -> subprocess.Popen:
    """A process that holds ``model_dir``'s lock until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(model_dir)], cwd=REPO, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout.readline() == "locked\n"
    return process


def train(model_dir, tiny_bert, sentiment_data):
    return train_files("configs/glue/sst2.yaml", model_dir, tiny_bert, *sentiment_data,
                       "task.max_seq_length=16", "trainer.epochs=1", "trainer.train_batch_size=32")


def test_a_second_run_on_a_model_dir_in_use_stops_and_writes_nothing(tiny_bert, sentiment_data, tmp_path):
    model_dir = tmp_path / "model"
    holder = hold_lock(model_dir)
    try:
        with pytest.raises(AssertionError) as failed:
            train(model_dir, tiny_bert, sentiment_data)
    finally:
        holder.kill()
        holder.wait()
    error = str(failed.value).strip().splitlines()[-1]
    assert error.startswith(f"tfft-train: error: model_dir '{model_dir}' is in use by another tfft-train "
                            f"(pid {holder.pid} on host {socket.gethostname()}, started ")
    assert error.endswith(f"(if that run is gone, delete '{model_dir / LOCK_FILE}')")
    assert sorted(path.name for path in model_dir.iterdir()) == [LOCK_FILE]  # no params.yaml, no logs


def test_the_lock_of_a_killed_run_is_taken_over_and_removed_at_the_end(tiny_bert, sentiment_data, tmp_path):
    model_dir = tmp_path / "model"
    holder = hold_lock(model_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((model_dir / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind

    run = train(model_dir, tiny_bert, sentiment_data)
    assert f"taking over the lock left by a run that is gone (pid {holder.pid} on host" in run.stderr
    assert (model_dir / "eval_results.json").is_file()
    assert not (model_dir / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "tpu-vm-7", "pid": 4242, "started": 0}))
    with pytest.raises(TfftError, match=r"in use by another tfft-train \(pid 4242 on host tpu-vm-7, "):
        with run_lock(tmp_path):
            pass
    assert json.loads((tmp_path / LOCK_FILE).read_text())["host"] == "tpu-vm-7"


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError), run_lock(tmp_path):
        raise RuntimeError("training failed")
    with run_lock(tmp_path) as path:  # free again
        assert json.loads(path.read_text())["pid"] > 0
