"""What a run reports about itself: stage timings, model FLOPs, profiles, and a final
evaluation that reuses the last validation only when it saw the final float32 weights."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import run_train

from tfft import backbones
from tfft.training.callbacks import profile_range


def settings(tiny_bert, data, **extra) -> str:
    values = {
        "task.init_checkpoint": tiny_bert, "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1], "task.max_seq_length": 32, "trainer.epochs": 2,
        "trainer.train_batch_size": 32, "trainer.eval_batch_size": 32, "trainer.learning_rate": 1e-3,
        **extra,
    }
    return ",".join(f"{key}={value}" for key, value in values.items())


def train(tmp_path, tiny_bert, data, **extra):
    model_dir = tmp_path / "model"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings(tiny_bert, data, **extra)}")
    read = lambda name: json.loads((model_dir / name).read_text())  # noqa: E731
    return model_dir, read("train_results.json"), read("eval_results.json")


def test_forward_flops_count_every_kernel_and_attention(tiny_bert):
    backbone = backbones.from_pretrained(str(tiny_bert))
    hidden, intermediate = 32, 37
    per_token = 2 * 2 * (4 * hidden * hidden + 2 * hidden * intermediate)  # 2 layers, 2 FLOPs per MAC.
    lengths = np.array([3, 10])
    attention = 2 * 4 * hidden * (9 + 100)
    assert backbone.forward_flops(lengths) == pytest.approx(per_token * 13 + attention)


def test_results_time_each_stage_and_count_flops(tmp_path, tiny_bert, sentiment_data):
    _, results, metrics = train(tmp_path, tiny_bert, sentiment_data)
    seconds = results["seconds"]
    assert set(seconds) == {"read_and_encode", "build_model", "first_batch", "train", "validation"}
    assert all(value > 0 for value in seconds.values()), seconds
    assert seconds["first_batch"] < seconds["train"]
    assert results["train_flops"] > 0
    flops_per_second = results["train_flops"] / results["train_seconds"]
    assert results["model_flops_per_second"] == pytest.approx(flops_per_second)
    # float32: the last validation saw the final weights, so the final evaluation reused it.
    assert metrics["eval_seconds"] < 0.1 * seconds["validation"]


def test_mixed_precision_validates_the_last_epoch_in_float32(tmp_path, tiny_bert, sentiment_data):
    """The final evaluation reuses the last validation, run on a float32 copy: the same metrics
    as evaluating the final checkpoint afresh in float32."""
    model_dir, results, metrics = train(tmp_path, tiny_bert, sentiment_data,
                                        **{"runtime.mixed_precision": "mixed_bfloat16"})
    assert metrics["eval_seconds"] < 0.1 * results["seconds"]["validation"]
    fresh = run_train(f"--model_dir={model_dir}", "--mode=eval").results
    for name in ("loss", "accuracy"):
        assert metrics[name] == pytest.approx(fresh[name], abs=1e-6), name


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_early_stopping_reevaluates_the_restored_weights(tmp_path, tiny_bert, sentiment_data, precision):
    """After early stopping puts the best epoch's weights back, eval_results.json is of those
    weights (as --mode=eval of the final checkpoint), not of the last epoch's."""
    model_dir = tmp_path / "model"
    # Validation labels flipped: the better the model learns, the worse its validation loss gets.
    rows = sentiment_data[1].read_text().splitlines()
    flipped = tmp_path / "flipped.tsv"
    flipped.write_text("\n".join([rows[0], *(f"{text}\t{1 - int(label)}" for text, label in
                                             (row.split("\t") for row in rows[1:]))]) + "\n")
    overrides = settings(tiny_bert, (sentiment_data[0], flipped), **{
        "trainer.epochs": 6, "trainer.early_stopping_patience": 1, "trainer.lr_reference_width": 0,
        "task.main_metric": "loss", "runtime.mixed_precision": precision})
    run = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                    f"--params_override={overrides}")
    results = json.loads((model_dir / "train_results.json").read_text())
    metrics = json.loads((model_dir / "eval_results.json").read_text())
    # It stopped before the last epoch and put an earlier epoch's weights back.
    stopped = re.search(r"early stopping after epoch (\d): val_loss did not improve on ([\d.]+) "
                        r"\(epoch (\d)\)", run.stderr)
    assert stopped, run.stderr[-3000:]
    last, best, best_epoch = int(stopped[1]), float(stopped[2]), int(stopped[3])
    assert results["epochs"] == last < 6 and best_epoch < last
    assert metrics["loss"] == pytest.approx(best, abs=1e-4)  # the best epoch's validation loss
    fresh = run_train(f"--model_dir={model_dir}", "--mode=eval").results
    assert metrics["loss"] == pytest.approx(fresh["loss"], abs=1e-6)


def test_profile_steps_write_a_tensorboard_profile(tmp_path, tiny_bert, sentiment_data):
    model_dir, _, _ = train(tmp_path, tiny_bert, sentiment_data,
                            **{"trainer.epochs": 1, "trainer.profile_steps": "[3,5]"})
    traces = list((model_dir / "logs" / "profile").glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000


@pytest.mark.parametrize("steps", [[5], [0, 3], [4, 2], [1.5, 3]])
def test_profile_steps_must_be_a_batch_range(steps):
    with pytest.raises(Exception, match=r"trainer.profile_steps must be \[first, last\]"):
        profile_range(steps)
    assert profile_range([]) is None and profile_range([2, 2]) == (2, 2)


def test_logged_throughput_covers_the_whole_interval(monkeypatch):
    """Each log line's examples/s is over all batches since the previous line, not the last one."""
    from tfft.training import callbacks

    clock = iter([0.0, 1.0, 3.0, 7.0])  # Ends of batches 1-4; the first (tracing) is left out.
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    scalars = callbacks.TrainingScalars(None, callbacks.Progress(batches_per_epoch=10), 32, 320,
                                        every_steps=2, epochs=1)
    windows = []

    def write(step, logs, window):  # As TrainingScalars._write, without event files.
        scalars._last_logged_step = step
        windows.append((step, window))

    monkeypatch.setattr(scalars, "_write", write)
    for batch in range(4):
        scalars.on_train_batch_end(batch, {"loss": 1.0})
    assert windows == [(2, pytest.approx(32.0)), (4, pytest.approx(64 / 6))]
    assert scalars.examples_per_second == pytest.approx(96 / 7)
