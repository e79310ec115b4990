"""Preemption-safe training: SIGKILL and rerun, determinism, damaged backups, NaN losses."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import REPO, run_cli, run_train

from tfft.errors import TfftError
from tfft.training.backup import Backup, TrainingState

COMPARED = ("loss", "accuracy", "f1", "matthews_corrcoef", "num_examples")


@pytest.fixture(scope="module")
def command(tiny_bert, sentiment_data):
    train, dev = sentiment_data
    settings = ",".join([
        f"task.init_checkpoint={tiny_bert}", f"task.train_data.input_path={train}",
        f"task.validation_data.input_path={dev}", "task.max_seq_length=32", "trainer.epochs=3",
        "trainer.train_batch_size=16", "trainer.learning_rate=1e-3", "trainer.backup_steps=7",
        "trainer.lr_reference_width=32",  # the rate is the 32-wide test encoder's own
        "runtime.deterministic=true",
    ])

    def arguments(model_dir):
        return ["--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                f"--params_override={settings}"]

    return arguments


def evaluated(model_dir) -> dict:
    results = json.loads((model_dir / "eval_results.json").read_text())
    return {key: results[key] for key in COMPARED}


@pytest.fixture(scope="module")
def uninterrupted(command, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("uninterrupted") / "model"
    run_cli("tfft.cli.train", *command(model_dir))
    return model_dir


def test_killed_mid_epoch_then_rerun_equals_the_uninterrupted_run(command, uninterrupted, tmp_path):
    model_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "tfft.cli.train", *command(model_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backups = model_dir / "backup"
    deadline = time.time() + 300
    # 30 batches per epoch, a backup every 7: wait for one inside the second epoch.
    while not any(int(p.name.split("-")[1]) >= 37 for p in backups.glob("step-*")):
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no mid-epoch backup appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (model_dir / "checkpoints" / "final.weights.h5").exists()
    latest = max(int(p.name.split("-")[1]) for p in backups.glob("step-*"))
    assert latest % 30  # the run died mid-epoch, after a mid-epoch backup

    rerun = run_cli("tfft.cli.train", *command(model_dir))
    assert "resuming from" in rerun.stderr
    assert evaluated(model_dir) == evaluated(uninterrupted)  # exactly: same weights, same data order
    train_results = json.loads((model_dir / "train_results.json").read_text())
    assert train_results["steps"] == 90 and train_results["resumed_from"]["epoch"] >= 2
    assert not backups.exists()  # removed once training finished


def start_training(arguments: list[str], log) -> subprocess.Popen:
    """``tfft-train`` in a new process whose stderr goes to ``log``; returns once epoch 1 of 3 is done."""
    process = subprocess.Popen([sys.executable, "-m", "tfft.cli.train", *arguments], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.time() + 300
    while "epoch 1/3 done" not in log.read_text():  # 60 of 90 steps to go: seconds on a fast machine
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, "training did not finish its first epoch"
        time.sleep(0.002)
    return process


def last_line(log) -> str:
    return log.read_text().strip().splitlines()[-1]


def test_sigterm_writes_a_backup_at_once_exits_143_and_the_rerun_equals_the_uninterrupted_run(
        command, uninterrupted, tmp_path):
    model_dir, log = tmp_path / "preempted", tmp_path / "stderr.txt"
    process = start_training(command(model_dir), log)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert "Traceback" not in log.read_text()
    stopped = last_line(log)
    assert stopped.startswith("tfft-train: interrupted: stopped by SIGTERM after ")
    assert stopped.endswith("; rerun the same command to resume")
    written = int(stopped.split(" after ")[1].split(" batches")[0])
    assert 30 <= written < 90 and (model_dir / "backup" / f"step-{written:09d}" / "state.json").is_file()
    assert not (model_dir / "eval_results.json").exists()

    rerun = run_cli("tfft.cli.train", *command(model_dir))
    assert f"step-{written:09d}" in rerun.stderr and "resuming from" in rerun.stderr
    assert evaluated(model_dir) == evaluated(uninterrupted)


def test_ctrl_c_backs_up_even_without_scheduled_backups(
        command, uninterrupted, tmp_path):
    """SIGINT with trainer.backup_steps=-1: exit 130 with a backup the rerun resumes from."""
    model_dir, log = tmp_path / "interrupted", tmp_path / "stderr.txt"
    arguments = [*command(model_dir), "--params_override=trainer.backup_steps=-1"]
    process = start_training(arguments, log)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert last_line(log).startswith("tfft-train: interrupted: stopped by SIGINT after ")
    [written] = (model_dir / "backup").glob("step-*")
    rerun = run_cli("tfft.cli.train", *arguments)
    assert written.name in rerun.stderr
    assert evaluated(model_dir) == evaluated(uninterrupted)



def test_a_second_ctrl_c_exits_at_once():
    """The first SIGINT is noted (training would stop after its step); the second one ends the process."""
    script = (
        "import os, signal, time\n"
        "from tfft.training.interruption import SignalFlag\n"
        "with SignalFlag().installed() as flag:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "    print('first:', flag.received, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "print('not reached')\n"
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                             timeout=120)
    assert process.returncode == 130
    assert process.stdout.strip() == f"first: {int(signal.SIGINT)}"
    assert "SIGINT received: stopping after the current step to write a backup" in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        "second interrupt: exiting now; the last complete backup stays")


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs to fill up (skips where this process may not mount one)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder) -> Path:
    """Writes a file into ``folder`` until its disk is full."""
    filler = folder / "filler"
    with filler.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 2**20)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_stops_the_run_in_one_line_and_the_earlier_backup_resumes(
        command, uninterrupted, small_disk):
    model_dir, log = small_disk / "model", small_disk.parent / "stderr.txt"
    process = subprocess.Popen([sys.executable, "-m", "tfft.cli.train", *command(model_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    first = model_dir / "backup" / "step-000000007"
    deadline = time.time() + 300
    while not first.is_dir():
        assert process.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.002)
    process.send_signal(signal.SIGSTOP)  # so that the disk fills before the next backup
    filler = fill(small_disk)
    process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in log.read_text()
    error = last_line(log)
    assert error.startswith(f"tfft-train: error: cannot write '{model_dir}/"), error
    assert "no space left on its disk (needs about " in error and error.endswith(
        "free some space and rerun the same command (the earlier files are intact)")
    assert (first / "state.json").is_file() and not list((model_dir / "backup").glob(".tmp-*"))

    filler.unlink()
    rerun = run_cli("tfft.cli.train", *command(model_dir))
    assert "resuming from" in rerun.stderr
    assert evaluated(model_dir) == evaluated(uninterrupted)


@pytest.mark.slow
def test_soak_200_backups_and_10_kills_end_as_the_uninterrupted_run(command, tmp_path):
    """SIGKILL at 10 random steps (fixed seed) of a 210-step run backed up after every batch."""
    import random

    def arguments(model_dir):
        return [*command(model_dir), "--params_override=trainer.epochs=7,trainer.backup_steps=1"]

    uninterrupted = tmp_path / "uninterrupted"
    run_cli("tfft.cli.train", *arguments(uninterrupted))
    model_dir = tmp_path / "soaked"
    backups = model_dir / "backup"
    kills = sorted(random.Random(0).sample(range(5, 205), 10))
    most_on_disk, killed_at = 0, []
    for target in kills:
        process = subprocess.Popen([sys.executable, "-m", "tfft.cli.train", *arguments(model_dir)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while True:
            steps = [int(path.name.split("-")[1]) for path in backups.glob("step-*")]
            most_on_disk = max(most_on_disk, len(steps))
            if steps and max(steps) >= target:
                break
            assert process.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, f"no backup reached step {target}"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(max(steps))
    run = run_cli("tfft.cli.train", *arguments(model_dir))
    assert "resuming from" in run.stderr
    assert len(killed_at) == 10 and killed_at == sorted(killed_at)
    assert most_on_disk <= 2
    assert evaluated(model_dir) == evaluated(uninterrupted)
    train_results = json.loads((model_dir / "train_results.json").read_text())
    assert train_results["steps"] == 210 and not backups.exists()


def backup_steps_on_disk(model_dir) -> list[int]:
    return sorted(int(path.name.split("-")[1]) for path in (model_dir / "backup").glob("step-*"))


def kill_after_backup(arguments: list[str], model_dir, step: int) -> int:
    """Starts ``tfft-train``, SIGKILLs it once a backup at ``step`` or later exists; returns the newest."""
    process = subprocess.Popen([sys.executable, "-m", "tfft.cli.train", *arguments], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not any(found >= step for found in backup_steps_on_disk(model_dir)):
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, f"no backup at step {step} appeared"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (model_dir / "checkpoints" / "final.weights.h5").exists()
    return backup_steps_on_disk(model_dir)[-1]


#: Configurations users run, each killed after a backup and resumed: (settings, kill after the backup
#: at this step, what the newest backup must show).
RESUME_MATRIX = {
    # The default: backups at epoch ends only (30 batches per epoch).
    "epoch_end_backups": ("trainer.backup_steps=0", 30, lambda step: step % 30 == 0),
    # Killed inside an optimizer update of 4 batches: the gradient accumulators resume too.
    "mid_gradient_accumulation": ("trainer.gradient_accumulation_steps=4,trainer.backup_steps=5", 5,
                                  lambda step: step % 4 != 0),
    # float16 with dynamic loss scaling: the loss scale and its counter resume too.
    "mixed_float16_loss_scale": ("runtime.mixed_precision=mixed_float16", 37, lambda step: step % 30 != 0),
    # Early stopping: the best metric, its epoch and the patience count resume too.
    "early_stopping_state": ("trainer.early_stopping_patience=1,trainer.backup_steps=0", 30,
                             lambda step: step % 30 == 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RESUME_MATRIX))
def test_resume_matrix_each_configuration_ends_as_its_uninterrupted_run(name, command, tmp_path):
    settings, step, shows = RESUME_MATRIX[name]

    def arguments(model_dir):
        return [*command(model_dir), f"--params_override={settings}"]

    run_cli("tfft.cli.train", *arguments(tmp_path / "uninterrupted"))
    model_dir = tmp_path / "killed"
    newest = kill_after_backup(arguments(model_dir), model_dir, step)
    assert shows(newest), newest
    rerun = run_cli("tfft.cli.train", *arguments(model_dir))
    assert f"resuming from {model_dir / 'backup' / f'step-{newest:09d}'}" in rerun.stderr
    assert evaluated(model_dir) == evaluated(tmp_path / "uninterrupted")


def test_two_deterministic_runs_give_identical_metrics(command, uninterrupted, tmp_path):
    model_dir = tmp_path / "again"
    run_cli("tfft.cli.train", *command(model_dir))
    assert evaluated(model_dir) == evaluated(uninterrupted)
    assert evaluated(model_dir)["accuracy"] > 0.9


def test_non_finite_loss_stops_with_the_step(tiny_bert, tmp_path):
    rows = ["sentence1\tsentence2\tscore"] + [f"a good film\tthe plot\t{i % 5}" for i in range(63)]
    rows.insert(20, "a bad film\tthe acting\t1e30")  # squared error overflows float32
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(rows) + "\n")
    process = run_train(
        "--config_file=configs/glue/stsb.yaml", f"--model_dir={tmp_path / 'model'}",
        "--mode=train", f"--params_override=task.init_checkpoint={tiny_bert},task.max_seq_length=16,"
        f"task.train_data.input_path={train},task.label_field=score,trainer.train_batch_size=8,"
        "trainer.epochs=1",
        check=False,
    )
    assert process.returncode == 1
    error = process.stderr.strip().splitlines()[-1]
    assert "Traceback" not in process.stderr
    assert error.startswith("tfft-train: error: training loss became inf at batch ")
    assert "(epoch 1, batch" in error and "lower trainer.learning_rate" in error
    assert not (tmp_path / "model" / "checkpoints" / "final.weights.h5").exists()


# --- the backup files themselves ----------------------------------------------------------------


def small_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.5),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def values(variables) -> list[np.ndarray]:
    return [np.asarray(variable).copy() for variable in variables]


def test_backup_round_trip_restores_every_variable(tmp_path):
    model = small_model(1)
    model.fit(np.ones((8, 3)), np.zeros(8), epochs=2, verbose=0)  # moves weights, moments, seeds
    config = {"trainer": {"epochs": 3}}
    Backup(tmp_path, model, config).save(TrainingState(1, 5, {"best": 0.5, "best_epoch": 0, "wait": 0}), 35)

    fresh = small_model(2)
    state = Backup(tmp_path, fresh, config).restore()
    assert state == TrainingState(1, 5, {"best": 0.5, "best_epoch": 0, "wait": 0})
    for a, b in zip(values(model.variables + model.optimizer.variables),
                    values(fresh.variables + fresh.optimizer.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == 2


def test_only_the_newest_backups_are_kept_and_unfinished_ones_ignored(tmp_path):
    model = small_model(1)
    backup = Backup(tmp_path, model, {})
    for step in (7, 14, 21):
        backup.save(TrainingState(0, step), step)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["step-000000014", "step-000000021"]
    (tmp_path / "backup" / ".tmp-step-000000028").mkdir()  # a write that a crash cut short
    assert backup.restore().batches == 21
    assert not (tmp_path / "backup" / ".tmp-step-000000028").exists()
    backup.remove()
    assert not (tmp_path / "backup").exists()
    assert backup.restore() is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "state"])
def test_damaged_backup_is_reported_with_what_to_delete(tmp_path, damage):
    model = small_model(1)
    backup = Backup(tmp_path, model, {})
    backup.save(TrainingState(0, 7), 7)
    backup.save(TrainingState(0, 14), 14)
    latest = tmp_path / "backup" / "step-000000014"
    data = next(latest.glob("variables.data-*"))
    if damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:10])
    else:
        (latest / "state.json").write_text("{")
    with pytest.raises(TfftError, match=r"backup '.*step-000000014' is damaged \(.*\); delete that "
                                        r"folder to resume from the previous backup \(step-000000007\)"):
        Backup(tmp_path, small_model(2), {}).restore()


def test_backup_of_another_config_is_refused(tmp_path):
    model = small_model(1)
    Backup(tmp_path, model, {"trainer": {"learning_rate": 2e-5, "backup_steps": 7}}).save(TrainingState(), 7)
    # Logging and backup intervals may change between restarts ...
    changed = {"trainer": {"learning_rate": 2e-5, "backup_steps": 50}}
    assert Backup(tmp_path, small_model(2), changed).restore() is not None
    # ... anything that changes the result may not.
    with pytest.raises(TfftError, match=r"another config \(trainer.learning_rate: 2e-05 then, 0.001 now\); "
                                        r"rerun with the same config to resume it, or delete"):
        Backup(tmp_path, small_model(2), {"trainer": {"learning_rate": 1e-3}}).restore()



def test_a_rerun_with_another_config_stops_before_touching_the_run(tmp_path):
    from tfft.training.backup import check_resumable

    Backup(tmp_path, small_model(1), {"task": {"max_seq_length": 128}}).save(TrainingState(), 7)
    check_resumable(tmp_path, {"task": {"max_seq_length": 128}})
    with pytest.raises(TfftError, match=r"\(task.max_seq_length: 128 then, 64 now\)"):
        check_resumable(tmp_path, {"task": {"max_seq_length": 64}})
    check_resumable(tmp_path / "elsewhere", {})  # no backup: nothing to check


def test_a_backup_that_runs_out_of_space_leaves_the_earlier_ones(tmp_path):
    """The same without a tmpfs: the checkpoint write fails as TensorFlow's does on a full disk."""
    import tensorflow as tf

    model = small_model(1)
    backup = Backup(tmp_path, model, {})
    backup.save(TrainingState(0, 7), 7)

    def no_space(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "variables_temp/part-0; No space left on device")

    backup._checkpoint.write = no_space
    with pytest.raises(TfftError, match=r"^cannot write '.*step-000000014': no space left on its disk "
                                        r"\(needs about 0\.0 MiB, .* MiB free\); free some space"):
        backup.save(TrainingState(0, 14), 14)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["step-000000007"]
    assert Backup(tmp_path, small_model(2), {}).restore() == TrainingState(0, 7)
