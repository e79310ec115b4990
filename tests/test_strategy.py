"""Strategy and precision selection from the runtime config."""

from __future__ import annotations

import json

import keras
import pytest
import tensorflow as tf
from conftest import run_cli, write_sentiment_tsv

from tfft.config import RuntimeConfig
from tfft.errors import TfftError
from tfft.training.strategy import create_strategy, set_precision


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
        "trainer.train_batch_size=16", "trainer.learning_rate=1e-3",
        f"runtime.strategy={strategy}", f"runtime.mixed_precision={precision}",
    ])
    run_cli("tfft.cli.train", "--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
            f"--params_override={overrides}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    train_results = json.loads((model_dir / "train_results.json").read_text())
    assert train_results["steps"] == 3 * 30
    assert results["accuracy"] > 0.85
