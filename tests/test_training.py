"""End-to-end runs of tfft-train / tfft-export on a tiny checkpoint and synthetic data.

Most runs do what the entry points do in this process (conftest's run_train / run_export);
predict mode and the SavedModel export also run as the real commands.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, check_export, run_cli, run_export, run_train, saved_model_cli_run

from tfft.config import build_config


def read_scalars(folder) -> dict[str, list[float]]:
    """All scalar summaries under a TensorBoard log folder, by tag."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {
        tag: [float(tf.make_ndarray(event.tensor_proto)) for event in accumulator.Tensors(tag)]
        for tag in accumulator.Tags()["tensors"]
    }


def overrides(tiny_bert, data, **extra) -> str:
    settings = {
        "task.init_checkpoint": tiny_bert,
        "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1],
        "task.max_seq_length": 32,
        "trainer.epochs": 3,
        "trainer.train_batch_size": 16,
        "trainer.eval_batch_size": 32,
        "trainer.learning_rate": 1e-3,
        "trainer.lr_reference_width": 32,  # The rate is the 32-wide test encoder's own.
        "trainer.log_every_steps": 10,
        **extra,
    }
    return ",".join(f"{key}={value}" for key, value in settings.items())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert, sentiment_data):
    """One train_and_eval run shared by the layout, eval, predict and export tests."""
    model_dir = tmp_path_factory.mktemp("run") / "model"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              "--mode=train_and_eval", f"--params_override={overrides(tiny_bert, sentiment_data)}")
    return model_dir


def test_training_learns_and_writes_results(trained):
    results = json.loads((trained / "eval_results.json").read_text())
    assert {"loss", "accuracy", "f1", "matthews_corrcoef", "examples_per_second"} <= set(results)
    assert results["num_examples"] == 96
    # The label depends on one sentiment word: a model that trains gets it right.
    assert results["accuracy"] > 0.9
    train = json.loads((trained / "train_results.json").read_text())
    assert train["steps"] == 3 * 30 and train["epochs"] == 3
    assert train["examples_per_second"] > 0


def test_model_dir_layout(trained):
    params = build_config([str(trained / "params.yaml")])
    assert params.trainer.epochs == 3 and params.task.max_seq_length == 32
    for name in ("final", "best", "latest"):
        assert (trained / "checkpoints" / f"{name}.weights.h5").is_file()
    assets = {p.name for p in (trained / "assets").iterdir()}
    assert {"config.json", "tokenizer.json", "vocab.txt", "labels.txt"} <= assets
    assert (trained / "assets" / "labels.txt").read_text().split() == ["0", "1"]


def test_weight_files_hold_the_model_alone_and_equal_weights_are_written_once(trained):
    import h5py

    folder = trained / "checkpoints"
    final, latest = folder / "final.weights.h5", folder / "latest.weights.h5"
    # The last epoch's weights: written as latest, linked as final.
    assert final.stat().st_ino == latest.stat().st_ino
    with h5py.File(final) as weights:
        assert "layers" in weights and "optimizer" not in weights


def test_tensorboard_scalars(trained):
    train = read_scalars(trained / "logs" / "train")
    validation = read_scalars(trained / "logs" / "validation")
    assert {"loss", "learning_rate", "accuracy", "examples_per_second"} <= set(train)
    assert {"loss", "accuracy", "f1", "matthews_corrcoef", "examples_per_second"} <= set(validation)
    assert len(validation["accuracy"]) == 3  # One evaluation per epoch.
    # Logged after warmup (9 of 90 steps): linear decay from near the 1e-3 peak to 0.
    rates = train["learning_rate"]
    assert 0.9e-3 < rates[0] <= 1e-3 and rates[-1] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def test_eval_mode_reproduces_eval_results(trained):
    expected = json.loads((trained / "eval_results.json").read_text())
    (trained / "eval_results.json").unlink()
    run_train(f"--model_dir={trained}", "--mode=eval")
    again = json.loads((trained / "eval_results.json").read_text())
    assert again["accuracy"] == expected["accuracy"]
    assert again["loss"] == pytest.approx(expected["loss"], abs=1e-5)


def test_predict_mode_writes_one_row_per_example(trained, sentiment_data, tmp_path):
    """The tfft-train command itself (a subprocess) in predict mode."""
    unlabeled = tmp_path / "unlabeled.tsv"
    unlabeled.write_text("sentence\nthe movie was great\nan awful boring film\n")
    run_cli("tfft.cli.train", f"--model_dir={trained}", "--mode=predict",
            f"--params_override=task.predict_data.input_path={unlabeled}")
    rows = [json.loads(line) for line in (trained / "predictions.jsonl").read_text().splitlines()]
    assert [row["sentence"] for row in rows] == ["the movie was great", "an awful boring film"]
    assert [row["label"] for row in rows] == ["1", "0"]
    assert all(sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for row in rows)


def test_export_loads_without_tfft_and_reproduces_accuracy(trained, tmp_path):
    """The tfft-export command itself (a subprocess), SavedModel format."""
    export_dir = tmp_path / "export"
    process = run_cli("tfft.cli.export", f"--model_dir={trained}", f"--export_dir={export_dir}")
    assert f"SavedModel written to {export_dir}" in process.stdout
    report = check_export(trained, export_dir)
    assert report["metric"] == "accuracy" and report["examples"] == 96
    assert report["saved_model"] == pytest.approx(report["eval_results"], abs=1e-9)
    assert not any(report["imported"].values()), report["imported"]
    assert (export_dir / "assets" / "labels.txt").read_text().split() == ["0", "1"]
    import tensorflow as tf

    signatures = tf.saved_model.load(str(export_dir)).signatures
    assert sorted(signatures) == ["serve_examples", "serve_token_ids", "serving_default", "tokenize"]
    assert_saved_model_cli_runs_text(export_dir, tmp_path / "cli")
    assert sorted(signatures["serving_default"].structured_outputs) == ["label", "logits", "probabilities"]
    assert sorted(signatures["serve_token_ids"].structured_input_signature[1]) == [
        "attention_mask", "input_ids", "token_type_ids"]


def assert_saved_model_cli_runs_text(export_dir, outdir):
    """TensorFlow's saved_model_cli (no TensorFlow Text ops loaded) shows and runs the raw-text signature."""
    cli = str(Path(sys.executable).parent / "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", str(export_dir), "--all"],
                           capture_output=True, text=True, check=True).stdout
    assert "signature_def['serving_default']" in shown
    assert re.search(r"inputs\['text'\] tensor_info:\s*dtype: DT_STRING", shown), shown
    texts = ["the movie was great", "an awful boring film"]
    outputs = saved_model_cli_run(export_dir, {"text": texts}, outdir)
    assert list(outputs["label"]) == [b"1", b"0"]


def test_regression_task_end_to_end(tiny_bert, tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "great", "fun", "bad", "awful", "boring"]
    lines = ["sentence1\tsentence2\tscore"]
    for _ in range(300):
        a, b = rng.choice(words, 2)
        score = (a in words[:3]) + (b in words[:3]) - 1.0  # Centred: learnable in few steps.
        lines.append(f"the movie was {a}\tthe film was {b}\t{score}")
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(lines) + "\n")
    model_dir = tmp_path / "model"
    settings = overrides(tiny_bert, (data, data), **{"trainer.epochs": 4, "task.label_field": "score"})
    run_train("--config_file=configs/glue/stsb.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert {"loss", "pearson", "spearman"} <= set(results)
    assert results["pearson"] > 0.8
    export_dir = tmp_path / "export"
    run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    report = check_export(model_dir, export_dir)
    assert report["metric"] == "pearson"
    assert report["saved_model"] == pytest.approx(report["eval_results"], abs=1e-6)
    import tensorflow as tf

    signatures = tf.saved_model.load(str(export_dir)).signatures
    ids = tf.constant([[2, 5, 3]], tf.int32)
    outputs = signatures["serve_token_ids"](
        input_ids=ids, token_type_ids=tf.zeros_like(ids), attention_mask=tf.ones_like(ids))
    assert list(outputs) == ["predictions"] and outputs["predictions"].shape == (1,)
    pair = signatures["serving_default"](text=tf.constant(["the movie was fun"]),
                                         text_pair=tf.constant(["the film was bad"]))
    assert sorted(pair) == ["predictions", "score"] and pair["score"].shape == (1,)


def test_early_stopping_restores_best_and_freezing_keeps_lower_layers(tiny_bert, sentiment_data, tmp_path):
    """Head-only training (0 encoder layers) with early stopping: final weights are the best."""
    import keras

    from tfft import modeling
    from tfft.backbones.checkpoint import open_checkpoint
    from tfft.tasks import get_task

    model_dir = tmp_path / "model"
    settings = overrides(tiny_bert, sentiment_data, **{
        "trainer.epochs": 6, "trainer.early_stopping_patience": 1,
        "trainer.trainable_encoder_layers": 0,
    })
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings}")
    config = modeling.load_run_config(model_dir)
    task = get_task(config.task)
    final, _, _ = modeling.restore_task_model(model_dir, task, "final")
    best, _, _ = modeling.restore_task_model(model_dir, task, "best")
    for a, b in zip(final.weights, best.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    checkpoint = open_checkpoint(str(tiny_bert))
    pretrained, _ = modeling.build_task_model(task, checkpoint.config(), checkpoint)
    backbone = final.get_layer("backbone")
    original = pretrained.get_layer("backbone")
    for a, b in zip(backbone.weights, original.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    head_now = keras.ops.convert_to_numpy(final.get_layer("head").kernel)
    head_then = keras.ops.convert_to_numpy(pretrained.get_layer("head").kernel)
    assert not np.allclose(head_now, head_then)


def test_bfloat16_static_shapes_and_steps_per_execution(tiny_bert, sentiment_data, tmp_path):
    model_dir = tmp_path / "model"
    settings = overrides(tiny_bert, sentiment_data, **{
        "runtime.mixed_precision": "mixed_bfloat16", "trainer.static_shapes": True,
        "trainer.steps_per_execution": 5, "runtime.strategy": "one_device",
    })
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    train = json.loads((model_dir / "train_results.json").read_text())
    assert results["num_examples"] == 96  # Static padding of the last batch drops nothing.
    assert results["accuracy"] > 0.9
    assert train["steps"] == 3 * (480 // 16)
    saved = yaml.safe_load((model_dir / "params.yaml").read_text())
    assert saved["runtime"]["mixed_precision"] == "mixed_bfloat16"


def test_readme_commands_are_the_scripts_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "bash tools/quickstart.sh" in readme and "bash tools/test.sh" in readme
    assert "tools/test.sh" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("script", ["tfft-train", "tfft-export"])
def test_console_scripts_are_installed(script):
    executable = Path(sys.executable).parent / script
    process = subprocess.run([str(executable)], capture_output=True, text=True)
    assert process.returncode != 0
    assert "--model_dir must have a value" in process.stderr


#: Each trainer key the README promises is range-checked, a value out of its range and the message.
OUT_OF_RANGE = [
    ("epochs", 0, "must be at least 1, got 0"),
    ("train_batch_size", 0, "must be at least 1, got 0"),
    ("eval_batch_size", -4, "must be at least 1, got -4"),
    ("eval_max_tokens", -1, "must be at least 0, got -1"),
    ("gradient_accumulation_steps", 0, "must be at least 1, got 0"),
    ("steps_per_execution", 0, "must be at least 1, got 0"),
    ("shuffle_buffer_size", 0, "must be at least 1, got 0"),
    ("backup_steps", -2, "must be at least -1, got -2"),
    ("log_every_steps", 0, "must be at least 1, got 0"),
    ("early_stopping_patience", -1, "must be at least 0, got -1"),
    ("trainable_encoder_layers", -2, "must be at least -1, got -2"),
    ("length_group_batches", 0, "must be at least 1, got 0"),
    ("reinit_top_layers", -1, "must be at least 0, got -1"),
    ("lr_reference_width", -1, "must be at least 0, got -1"),
    ("weight_decay", -0.01, "must be at least 0, got -0.01"),
    ("max_grad_norm", -1.0, "must be at least 0, got -1.0"),
    ("warmup_fraction", 1.5, r"must be in \[0, 1\], got 1.5"),
    ("adam_beta_1", 1.0, r"must be in \[0, 1\), got 1.0"),
    ("adam_beta_2", -0.1, r"must be in \[0, 1\), got -0.1"),
    ("learning_rate", 0.0, "must be positive, got 0.0"),
    ("adam_epsilon", 0.0, "must be positive, got 0.0"),
    ("layer_decay", 0.0, r"must be in \(0, 1\], got 0.0; 1.0 turns it off"),
    ("head_lr_multiplier", -1.0, "must be positive, got -1.0; 1.0 turns it off"),
    ("profile_steps", "[3]", r"must be \[first, last\]"),
]


@pytest.mark.parametrize(("key", "value", "message"), OUT_OF_RANGE, ids=[case[0] for case in OUT_OF_RANGE])
def test_trainer_settings_out_of_range_are_refused_before_anything_runs(key, value, message, tiny_bert,
                                                                       sentiment_data, tmp_path):
    import re

    model_dir = tmp_path / "model"
    failed = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
                       f"--params_override={overrides(tiny_bert, sentiment_data)},trainer.{key}={value}",
                       check=False)
    assert failed.returncode == 1
    line = failed.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"tfft-train: error: trainer\.{key} {message}.*", line), line
    assert not model_dir.exists() or not any(model_dir.iterdir())
