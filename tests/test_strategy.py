"""Strategy and precision selection from the runtime config."""

from __future__ import annotations

import dataclasses
import json
import socket

import keras
import pytest
import tensorflow as tf
from conftest import run_cli, run_train, write_sentiment_tsv

from tfft.config import RuntimeConfig
from tfft.errors import TfftError
from tfft.modeling import set_precision
from tfft.training.strategy import configure_runtime, create_strategy


def test_default_and_one_device_strategies():
    assert create_strategy(RuntimeConfig(strategy="default")) is tf.distribute.get_strategy()
    one = create_strategy(RuntimeConfig(strategy="one_device"))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.num_replicas_in_sync == 1


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TfftError, match="multi_worker needs a TF_CONFIG environment variable"):
        create_strategy(RuntimeConfig(strategy="multi_worker"))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TfftError, match="TF_CONFIG"):
        create_strategy(RuntimeConfig(strategy="multi_worker"))


def test_tpu_needs_an_address_and_reports_an_unreachable_one():
    with pytest.raises(TfftError, match="runtime.strategy=tpu needs runtime.tpu"):
        create_strategy(RuntimeConfig(strategy="tpu"))
    with pytest.raises(TfftError, match="cannot reach the TPU runtime.tpu='no-such-tpu'"):
        create_strategy(RuntimeConfig(strategy="tpu", tpu="no-such-tpu"))


def test_set_precision_sets_the_global_policy():
    try:
        set_precision("mixed_bfloat16")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        set_precision("float32")
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("strategy,precision", [("mirrored", "float32"), ("default", "mixed_float16")])
def test_training_runs_under_strategy_and_precision(tiny_bert, tmp_path, strategy, precision):
    """MirroredStrategy on the local device(s); float16 with Keras' dynamic loss scaling."""
    train = write_sentiment_tsv(tmp_path / "train.tsv", 480, seed=1)
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", 96, seed=2)
    model_dir = tmp_path / "model"
    overrides = ",".join([
        f"task.init_checkpoint={tiny_bert}", f"task.train_data.input_path={train}",
        f"task.validation_data.input_path={dev}", "task.max_seq_length=32", "trainer.epochs=3",
        "trainer.train_batch_size=16", "trainer.learning_rate=1e-3", "trainer.lr_reference_width=0",
        f"runtime.strategy={strategy}", f"runtime.mixed_precision={precision}",
    ])
    args = ("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
            f"--params_override={overrides}")
    if strategy == "mirrored":  # Several replicas need a fresh process (conftest.needs_a_fresh_process).
        run_cli("tfft.cli.train", *args)
    else:
        run_train(*args)
    results = json.loads((model_dir / "eval_results.json").read_text())
    train_results = json.loads((model_dir / "train_results.json").read_text())
    assert train_results["steps"] == 3 * 30
    assert results["accuracy"] > 0.85


def test_runtime_devices_and_cpu_split_are_checked():
    with pytest.raises(TfftError, match=r"runtime.devices names \[./gpu:7.\], which this machine does not"):
        create_strategy(RuntimeConfig(strategy="mirrored", devices=["/gpu:7"]))
    one = create_strategy(RuntimeConfig(strategy="mirrored", devices=["/cpu:0"]))
    assert one.num_replicas_in_sync == 1
    with pytest.raises(TfftError, match="runtime.num_cpu_devices must be 0"):
        configure_runtime(RuntimeConfig(num_cpu_devices=-1))
    tf.config.list_logical_devices()  # The runtime has started in this process: too late to split.
    with pytest.raises(TfftError, match="runtime.num_cpu_devices=3 must be set before TensorFlow starts"):
        configure_runtime(RuntimeConfig(num_cpu_devices=3))


# --- the TPU path, as far as a machine without a TPU goes ----------------------------------------


def test_silent_tpu_address_fails_fast_instead_of_hanging():
    with socket.socket() as sock:  # A port nothing listens on.
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TfftError, match=rf"cannot reach the TPU runtime.tpu='grpc://127.0.0.1:{port}' \("):
        create_strategy(RuntimeConfig(strategy="tpu", tpu=f"grpc://127.0.0.1:{port}"))
    with pytest.raises(TfftError, match="a grpc:// address needs host:port"):
        create_strategy(RuntimeConfig(strategy="tpu", tpu="grpc://tpu-host"))


def test_tfft_train_without_a_tpu_is_a_one_line_error(tiny_bert, tmp_path):
    data = write_sentiment_tsv(tmp_path / "train.tsv", 32)
    process = run_cli(
        "tfft.cli.train", "--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'model'}",
        f"--params_override=task.init_checkpoint={tiny_bert},task.train_data.input_path={data},"
        "runtime.mixed_precision=mixed_bfloat16", "--tpu=local", check=False,
    )
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        "tfft-train: error: cannot reach the TPU runtime.tpu='local' (")


def test_tpu_runs_get_static_shapes_everywhere(tiny_bert, tmp_path, monkeypatch):
    """On a TPU strategy, batches are fixed [per-replica batch, max_seq_length] without asking."""
    from tfft.config import build_config
    from tfft.data.pipeline import InMemorySource, epoch_dataset
    from tfft.data.tokenization import load_tokenizer
    from tfft.training.experiment import Experiment

    data = write_sentiment_tsv(tmp_path / "train.tsv", 100)
    config = build_config(["configs/glue/sst2.yaml"], {"task": {
        "init_checkpoint": str(tiny_bert), "max_seq_length": 24, "train_data": {"input_path": str(data)},
    }, "trainer": {"train_batch_size": 4}})
    assert not config.trainer.static_shapes
    monkeypatch.setattr(Experiment, "on_tpu", property(lambda self: True))
    experiment = Experiment(config, tmp_path / "model")
    assert experiment.static_length == 24
    features = experiment.task.encode(experiment._read("train_data"), load_tokenizer(tiny_bert))
    source = InMemorySource(features, experiment.task.feature_specs)
    plan = experiment._batch_plan(source)
    assert plan.static_length == 24 and plan.drop_remainder
    # A TPU host with 8 cores: per-replica batches of 4, every dimension static.
    context = tf.distribute.InputContext(1, 0, 8)
    plan = dataclasses.replace(plan, global_batch_size=32)
    dataset = epoch_dataset(source, plan, epoch=0, context=context)
    inputs, labels = dataset.element_spec
    assert all(spec.shape.as_list() == [4, 24] for spec in inputs.values())
    assert labels.shape.as_list() == [4]
    assert sum(1 for _ in dataset) == 100 // 32 * 8


def test_bfloat16_policy_computes_in_bfloat16_with_float32_logits(tiny_bert):
    from tfft.backbones.checkpoint import read_config
    from tfft.config import task_config
    from tfft.modeling import build_task_model
    from tfft.tasks import get_task

    try:
        set_precision("mixed_bfloat16")
        model, backbone = build_task_model(get_task(task_config(max_seq_length=32)), read_config(tiny_bert))
        assert model.get_layer("head").dtype_policy.name == "float32"
        assert backbone.compute_dtype == "bfloat16"
        assert all(variable.dtype == "float32" for variable in model.trainable_variables)
        logits = model({"input_ids": tf.ones([2, 5], tf.int32), "token_type_ids": tf.zeros([2, 5], tf.int32),
                        "attention_mask": tf.ones([2, 5], tf.int32)})
        assert logits.dtype == tf.float32
    finally:
        set_precision("float32")
