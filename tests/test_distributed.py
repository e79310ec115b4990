"""Several replicas and several workers train like one device with the same global batch.

The reference is a one-device run (global batch 16, no dropout, deterministic ops);
`mirrored` on 2 logical CPU devices, 2 `multi_worker` processes on loopback and
gradient accumulation (2 x 8) must reach the same evaluation metrics.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
from conftest import REPO, run_cli, run_trains_in_new_process

from tfft.training import distributed_fit_shim

METRICS = ("loss", "accuracy", "f1", "matthews_corrcoef")


def overrides(tiny_bert, data, **extra) -> str:
    settings = {
        "task.init_checkpoint": tiny_bert, "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1], "task.max_seq_length": 32,
        "task.hidden_dropout": 0, "task.attention_dropout": 0, "task.classifier_dropout": 0,
        "trainer.epochs": 3, "trainer.train_batch_size": 16, "trainer.eval_batch_size": 32,
        "trainer.learning_rate": 1e-3, "trainer.lr_reference_width": 0, "trainer.length_grouping": False,
        "runtime.deterministic": True, **extra,
    }
    return ",".join(f"{key}={value}" for key, value in settings.items())


def train(model_dir, settings: str) -> dict:
    run_cli("tfft.cli.train", "--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
            f"--params_override={settings}")
    return json.loads((model_dir / "eval_results.json").read_text())


def results(folder) -> tuple[dict, dict]:
    return (json.loads((folder / "eval_results.json").read_text()),
            json.loads((folder / "train_results.json").read_text()))


def assert_same_metrics(got: dict, expected: dict, tolerance: float) -> None:
    for name in METRICS:
        assert got[name] == pytest.approx(expected[name], abs=tolerance), name
    assert got["num_examples"] == expected["num_examples"]


@pytest.fixture(scope="module")
def one_process_runs(tiny_bert, sentiment_data, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """The one-device reference and the gradient-accumulation run: deterministic, so they
    need a new process, and share one."""
    folder = tmp_path_factory.mktemp("one_device")
    settings = {
        "model": overrides(tiny_bert, sentiment_data),
        # 2 batches of 8 averaged into each update: the updates of batch 16, same schedule.
        "accumulated": overrides(tiny_bert, sentiment_data, **{
            "trainer.train_batch_size": 8, "trainer.gradient_accumulation_steps": 2}),
    }
    run_trains_in_new_process(*[
        ("--config_file=configs/glue/sst2.yaml", f"--model_dir={folder / name}", f"--params_override={value}")
        for name, value in settings.items()])
    return {name: results(folder / name) for name in settings}


@pytest.fixture(scope="module")
def one_device(one_process_runs):
    return one_process_runs["model"]


def test_reference_run_learns(one_device):
    evaluated, trained = one_device
    assert evaluated["accuracy"] > 0.9 and trained["steps"] == 90


def test_mirrored_on_two_cpu_devices_matches_one_device(tiny_bert, sentiment_data, tmp_path, one_device):
    model_dir = tmp_path / "mirrored"
    train(model_dir, overrides(tiny_bert, sentiment_data, **{
        "trainer.train_batch_size": 8, "runtime.strategy": "mirrored", "runtime.num_cpu_devices": 2,
    }))
    evaluated, trained = results(model_dir)
    assert_same_metrics(evaluated, one_device[0], 1e-3)
    assert trained["steps"] == one_device[1]["steps"] == 90


def test_gradient_accumulation_matches_the_large_batch(one_process_runs, one_device):
    """2 batches of 8 averaged into each update: the updates of batch 16, same schedule."""
    evaluated, trained = one_process_runs["accumulated"]
    assert trained["steps"] == 90  # optimizer updates, not batches
    assert_same_metrics(evaluated, one_device[0], 1e-3)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_on_loopback_agree_with_one_process(tiny_bert, sentiment_data, tmp_path, one_device):
    """MultiWorkerMirroredStrategy from TF_CONFIG: 2 processes x global batch 8 = batch 16."""
    model_dir = tmp_path / "multi_worker"
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    settings = overrides(tiny_bert, sentiment_data, **{
        "trainer.train_batch_size": 8, "runtime.strategy": "multi_worker",
    })
    workers = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfft.cli.train", "--config_file=configs/glue/sst2.yaml",
             f"--model_dir={model_dir}", f"--params_override={settings}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    try:
        logs = [worker.communicate(timeout=600)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "global batch 16 on 2 replicas" in logs[0]
    chief, chief_train = results(model_dir)
    other, other_train = results(model_dir / "workers" / "worker_1")
    assert_same_metrics(chief, one_device[0], 1e-3)
    assert {k: chief[k] for k in METRICS} == {k: other[k] for k in METRICS}
    assert chief_train["steps"] == other_train["steps"] == 90
    # Only the chief writes checkpoints, logs and the config.
    assert (model_dir / "checkpoints" / "final.weights.h5").is_file()
    assert sorted(p.name for p in (model_dir / "workers" / "worker_1").iterdir()) == [
        "eval_results.json", "train_results.json"]


def test_dropout_masks_differ_between_replicas():
    """Keras 3 shares one seed state across replicas; tfft's dropout folds in the replica id."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfft.backbones.layers import Dropout
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            ours, theirs = Dropout(0.5, seed=3), keras.layers.Dropout(0.5, seed=3)
        ones = tf.ones([4, 16])
        for layer in (ours, theirs):
            out = strategy.experimental_local_results(
                tf.function(lambda: strategy.run(lambda: layer(ones, training=True)))())
            print(type(layer).__module__.split(".")[0], np.array_equal(out[0].numpy(), out[1].numpy()))
        one = Dropout(0.5, seed=3)(ones, training=True).numpy()
        print("single", np.array_equal(one, keras.layers.Dropout(0.5, seed=3)(ones, training=True).numpy()))
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.split("\n")
    assert "tfft False" in lines  # replicas draw different masks
    assert "keras True" in lines  # Keras' own layer repeats the mask on each replica
    assert "single True" in lines  # one device: exactly Keras' masks


def test_distributed_fit_shim_patches_keras_and_leaves_other_strategies_alone():
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    distributed_fit_shim.install()
    distributed_fit_shim.install()  # idempotent
    assert keras_tf_trainer.reduce_per_replica is distributed_fit_shim.reduce_per_replica
    patched = keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    assert patched is distributed_fit_shim._maybe_symbolic_build
    value = tf.constant([1.0, 3.0])
    strategy = tf.distribute.get_strategy()
    assert distributed_fit_shim.reduce_per_replica(value, strategy, "mean") is value
    assert not distributed_fit_shim._is_multi_worker(strategy)


def test_mirrored_fit_with_replica_batches_of_different_lengths():
    """Keras' build averages the replicas' input batches, which fails for unequal lengths."""
    script = textwrap.dedent("""
        import sys, numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        if sys.argv[1] == "shim":
            from tfft.training import distributed_fit_shim
            distributed_fit_shim.install()
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            tokens = keras.Input((None,), dtype="int32")
            pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(tokens))
            model = keras.Model(tokens, keras.layers.Dense(2)(pooled))
            model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        def batches(context):  # replica 0 gets length 5, replica 1 length 7
            return tf.data.Dataset.range(8).map(
                lambda i: (tf.ones([4, 5 + 2 * (i % 2)], tf.int32), tf.zeros([4], tf.int32)))
        model.fit(strategy.distribute_datasets_from_function(batches), steps_per_epoch=4, verbose=0)
        print("trained")
    """)
    runs = {mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                 cwd=REPO, timeout=300) for mode in ("keras", "shim")}
    assert "must have the same size and shape" in runs["keras"].stderr
    assert runs["shim"].returncode == 0 and "trained" in runs["shim"].stdout, runs["shim"].stderr[-2000:]


def test_global_norm_clipping_sees_the_global_batch_gradient():
    """One clipped AdamW step on 2 replicas equals the step on one device (Keras' own does not)."""
    script = textwrap.dedent("""
        import sys, numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfft.training.optimizer import AdamW
        x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32") * 10
        y = np.ones((8, 1), "float32")

        def step(strategy, optimizer_class):
            with strategy.scope():
                keras.utils.set_random_seed(0)
                model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
                model.compile(optimizer_class(0.1, global_clipnorm=0.01), "mse")
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            return model.get_weights()[0].ravel()

        one = step(tf.distribute.get_strategy(), AdamW)
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        print("tfft", np.abs(step(mirrored, AdamW) - one).max() < 1e-6)
        print("keras", np.abs(step(mirrored, keras.optimizers.AdamW) - one).max() < 1e-6)
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                             timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "tfft True" in process.stdout.split("\n")
    assert "keras False" in process.stdout.split("\n")


def start_workers(model_dir, settings: str, logs) -> list[subprocess.Popen]:
    """Two ``multi_worker`` tfft-train processes on loopback, their output in the files ``logs``."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = []
    for index, log in enumerate(logs):
        task = {"type": "worker", "index": index}
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfft.cli.train", "--config_file=configs/glue/sst2.yaml",
             f"--model_dir={model_dir}", f"--params_override={settings}"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")))
    return workers


def finish(workers: list[subprocess.Popen], logs) -> list[int]:
    try:
        return [worker.wait(timeout=600) for worker in workers]
    except subprocess.TimeoutExpired:
        raise AssertionError(logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]) from None
    finally:
        for worker in workers:
            worker.kill()


def wait_for_backup(model_dir, step: int, workers) -> int:
    import time

    deadline = time.time() + 300
    while True:
        steps = [int(path.name.split("-")[1]) for path in (model_dir / "backup").glob("step-*")]
        if steps and max(steps) >= step:
            return max(steps)
        assert all(worker.poll() is None for worker in workers), "a worker ended before the kill"
        assert time.time() < deadline, f"no backup at step {step}"
        time.sleep(0.002)


def compared(metrics: dict) -> dict:
    return {key: metrics[key] for key in (*METRICS, "num_examples")}


@pytest.fixture(scope="module")
def two_worker_settings(tiny_bert, sentiment_data) -> str:
    return overrides(tiny_bert, sentiment_data, **{
        "trainer.train_batch_size": 8, "runtime.strategy": "multi_worker", "trainer.backup_steps": 7})


@pytest.fixture(scope="module")
def two_workers_uninterrupted(two_worker_settings, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("two_workers")
    logs = [folder / "chief.log", folder / "worker.log"]
    assert finish(start_workers(folder / "model", two_worker_settings, logs), logs) == [0, 0]
    return results(folder / "model")[0]


@pytest.mark.slow
def test_two_workers_killed_and_restarted_end_as_the_uninterrupted_run(
        two_worker_settings, two_workers_uninterrupted, tmp_path):
    model_dir, logs = tmp_path / "model", [tmp_path / "chief.log", tmp_path / "worker.log"]
    workers = start_workers(model_dir, two_worker_settings, logs)
    newest = wait_for_backup(model_dir, 37, workers)
    for worker in workers:
        worker.kill()
    finish(workers, logs)
    assert newest % 30 and not (model_dir / "eval_results.json").exists()  # killed mid-epoch

    assert finish(start_workers(model_dir, two_worker_settings, logs), logs) == [0, 0]
    assert "resuming from" in logs[0].read_text() and "resuming from" in logs[1].read_text()
    assert compared(results(model_dir)[0]) == compared(two_workers_uninterrupted)


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_both_after_the_same_step(
        two_worker_settings, two_workers_uninterrupted, tmp_path):
    """The preempted worker's flag is reduced over both: they save after the same step and exit 143."""
    import signal

    model_dir, logs = tmp_path / "model", [tmp_path / "chief.log", tmp_path / "worker.log"]
    workers = start_workers(model_dir, two_worker_settings, logs)
    wait_for_backup(model_dir, 7, workers)
    workers[1].send_signal(signal.SIGTERM)  # the non-chief only
    assert finish(workers, logs) == [143, 143]
    stopped = [log.read_text().strip().splitlines()[-1] for log in logs]
    assert stopped[0].startswith("tfft-train: interrupted: stopped by SIGTERM after ")
    assert stopped[0].split(";")[0] == stopped[1].split(";")[0]  # the same step on both

    assert finish(start_workers(model_dir, two_worker_settings, logs), logs) == [0, 0]
    assert compared(results(model_dir)[0]) == compared(two_workers_uninterrupted)
