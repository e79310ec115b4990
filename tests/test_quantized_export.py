"""Small artifacts: int8 SavedModels, LiteRT files of four quantizations, and the artifact report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_cli, run_export, run_train
from test_cli_errors import assert_one_line_error
from test_question_answering import qa_data, qa_run  # noqa: F401 - fixtures
from test_token_classification import ner_data, ner_run  # noqa: F401 - fixtures

from tfft import modeling
from tfft.data.pipeline import inference_dataset
from tfft.data.tokenization import load_tokenizer
from tfft.tasks import get_task

# Trains three tiny runs in this process and converts a dozen LiteRT files: in the slow set, which
# keeps the default suite's workers within memory (README: the slow-test command).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sst_run(tmp_path_factory, tiny_bert, sentiment_data):
    model_dir = tmp_path_factory.mktemp("sst") / "model"
    settings = {"task.init_checkpoint": tiny_bert, "task.train_data.input_path": sentiment_data[0],
                "task.validation_data.input_path": sentiment_data[1], "task.max_seq_length": 32,
                "trainer.epochs": 3, "trainer.train_batch_size": 16, "trainer.learning_rate": 1e-3,
                "trainer.lr_reference_width": 0}
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              "--params_override=" + ",".join(f"{key}={value}" for key, value in settings.items()))
    return model_dir


def validation_batch(model_dir, size: int = 8) -> dict[str, np.ndarray]:
    """The first padded batch of the run's validation data (sorted by length, as evaluation batches)."""
    config = modeling.load_run_config(model_dir)
    task = get_task(config.task)
    tokenizer = load_tokenizer(model_dir / "assets")
    task.set_tokenizer(tokenizer)
    features = task.encode(task.read_examples(config.task.validation_data), tokenizer)
    features = features.take(np.arange(len(features) - size, len(features)))  # Lengths differ: padding.
    dataset, _, _ = inference_dataset(features, task.feature_specs, size, sort_by_length=False)
    return {name: value.numpy() for name, value in next(iter(dataset)).items()}


def export_litert(*args: str) -> str:
    """``tfft-export --format=litert args`` in a new process (the converter keeps gigabytes); its stdout."""
    return run_cli("tfft.cli.export", "--format=litert", *args).stdout


def saved_model_outputs(export_dir, batch) -> dict[str, np.ndarray]:
    serve = tf.saved_model.load(str(export_dir)).signatures["serve_token_ids"]
    outputs = serve(**{name: tf.constant(value) for name, value in batch.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def litert_runner(path):
    return tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serve_token_ids")


def test_the_int8_saved_model_holds_int8_weights_and_answers_as_the_float32_one(sst_run, tmp_path):
    run_export(f"--model_dir={sst_run}", f"--export_dir={tmp_path / 'float32'}")
    run = run_export(f"--model_dir={sst_run}", f"--export_dir={tmp_path / 'int8'}", "--quantize=int8")
    assert run.stdout == f"int8 SavedModel written to {tmp_path / 'int8'}\n"
    loaded = tf.saved_model.load(str(tmp_path / "int8"))
    kernels = [v for v in loaded.model_variables if v.dtype == tf.int8]
    assert len(kernels) >= 2 * 6 + 2  # Six Dense layers a layer (query ... output), pooler, head, embeddings.
    batch = validation_batch(sst_run)
    exact = saved_model_outputs(tmp_path / "float32", batch)
    quantized = saved_model_outputs(tmp_path / "int8", batch)
    np.testing.assert_allclose(quantized["probabilities"], exact["probabilities"], atol=0.05)
    text = tf.constant(["the movie was great fun", "boring and awful"])
    served = loaded.signatures["serving_default"](text=text)["label"].numpy()
    reference = tf.saved_model.load(str(tmp_path / "float32")).signatures["serving_default"](text=text)
    np.testing.assert_array_equal(served, reference["label"].numpy())


@pytest.mark.parametrize("run_name", ["sst_run", "ner_run", "qa_run"])
def test_float32_litert_gives_the_saved_models_outputs(run_name, request, tmp_path):
    model_dir = request.getfixturevalue(run_name)
    run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'saved_model'}")
    printed = export_litert("--quantize=none", f"--model_dir={model_dir}",
                            f"--export_dir={tmp_path / 'litert'}")
    assert printed == f"LiteRT model (none) written to {tmp_path / 'litert' / 'model.tflite'}\n"
    assets = sorted(path.name for path in (tmp_path / "litert" / "assets").iterdir())
    assert {"config.json", "labels.txt", "params.yaml", "tokenizer.json", "vocab.txt"} <= set(assets)
    batch = validation_batch(model_dir)
    expected = saved_model_outputs(tmp_path / "saved_model", batch)
    outputs = litert_runner(tmp_path / "litert" / "model.tflite")(**batch)
    assert set(outputs) == set(expected)
    real = batch["attention_mask"].astype(bool)
    for name, value in expected.items():
        if value.ndim > 1 and value.shape[1] == real.shape[1]:  # Per token: compare the real tokens.
            value, outputs[name] = value[real], outputs[name][real]
        np.testing.assert_allclose(outputs[name], value, atol=1e-4, err_msg=name)


def test_quantized_litert_files_answer_close_to_float32(sst_run, tmp_path):
    for quantize in ("none", "dynamic", "int8", "int8_full"):
        export_litert(f"--quantize={quantize}", f"--model_dir={sst_run}",
                      f"--export_dir={tmp_path / quantize}", "--calibration_examples=20")
    int8_tensors = {}
    for quantize in ("none", "dynamic", "int8", "int8_full"):
        interpreter = tf.lite.Interpreter(model_path=str(tmp_path / quantize / "model.tflite"))
        int8_tensors[quantize] = sum(item["dtype"] == np.int8 for item in interpreter.get_tensor_details())
    # Every kernel of 2 layers x 6 Dense + pooler + head in int8 (tiny ones too in integer graphs).
    assert int8_tensors["none"] == 0 and int8_tensors["dynamic"] >= 2, int8_tensors
    assert int8_tensors["int8"] >= 14, int8_tensors
    assert int8_tensors["int8_full"] > int8_tensors["int8"]  # Activations too.
    batch = validation_batch(sst_run)
    single = {name: value[:1, :int(batch["attention_mask"][0].sum())] for name, value in batch.items()}
    exact = litert_runner(tmp_path / "none" / "model.tflite")(**single)["probabilities"]
    for quantize in ("dynamic", "int8", "int8_full"):
        runner = litert_runner(tmp_path / quantize / "model.tflite")
        inputs = dict(single)
        if quantize != "dynamic":  # Integer graphs take no padding mask: every position attends.
            assert sorted(runner.get_input_details()) == ["input_ids", "token_type_ids"]
            del inputs["attention_mask"]
        np.testing.assert_allclose(runner(**inputs)["probabilities"], exact, atol=0.1, err_msg=quantize)


def test_quantizations_a_format_lacks_are_refused(sst_run, tmp_path):
    cases = [("--quantize=dynamic",
              "--quantize=dynamic is not available for --format=saved_model; choose one of none, int8$"),
             ("--format=hf", "--quantize=int8",
              "--quantize=int8 is not available for --format=hf; choose one of none$"),
             ("--format=litert", "--quantize=int4", "--quantize=int4 is not available for --format=litert; "
                                                    "choose one of dynamic, int8, int8_full, none$")]
    for *flags, message in cases:
        run = run_export(f"--model_dir={sst_run}", f"--export_dir={tmp_path / 'out'}", *flags, check=False)
        assert_one_line_error(run, "tfft-export", message)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("run_name", ["sst_run", "ner_run", "qa_run"])
def test_the_artifact_report_scores_each_artifact_alone_as_training_scored_the_model(run_name, request,
                                                                                       tmp_path):
    model_dir = request.getfixturevalue(run_name)
    process = subprocess.run(
        [sys.executable, str(REPO / "tools" / "artifact_report.py"), f"--model_dir={model_dir}",
         f"--output_dir={tmp_path}", "--artifacts=saved_model,litert_float32,litert,litert_int8",
         "--latency_examples=5", "--batch_size=8", "--calibration_examples=20"],
        capture_output=True, text=True, check=False, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    rows = {row["artifact"]: row for row in json.loads((tmp_path / "report.json").read_text())}
    recorded = json.loads((model_dir / "eval_results.json").read_text())
    metric = rows["saved_model"]["metric"]
    # The exported models score what training scored (float32 LiteRT to rounding).
    assert rows["saved_model"]["value"] == pytest.approx(recorded[metric], abs=1e-9)
    assert rows["litert_float32"]["value"] == pytest.approx(recorded[metric], abs=1e-6)
    for row in rows.values():
        assert not row["tfft_imported"] and row["latency_examples"] == 5
        assert row["bytes"] > 0 and row["examples_per_second"] > 0 and 0 < row["latency_ms_p50"]
    assert rows["litert"]["bytes"] < rows["litert_float32"]["bytes"]
    assert f"| saved_model | {rows['saved_model']['bytes'] / 1e6:.1f} |" in process.stdout
