"""Slow end-to-end checks on real data and the real MiniLM checkpoint (``pytest -m slow``)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import REPO, SHARED_DATA, run_cli

pytestmark = pytest.mark.slow


def test_quickstart_script_fine_tunes_and_exports(tmp_path):
    """The README's main command: SST-2 fine-tune, export, accuracy and path printed."""
    model_dir = tmp_path / "sst2"
    process = subprocess.run(
        ["bash", "tools/quickstart.sh", "--params_override=task.train_data.max_examples=4000"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "MODEL_DIR": str(model_dir)},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    accuracy = json.loads((model_dir / "eval_results.json").read_text())["accuracy"]
    assert f"SST-2 dev accuracy: {accuracy:.4f} (872 examples)" in process.stdout
    assert f"SavedModel: {model_dir}/export/1" in process.stdout
    assert (model_dir / "export" / "1" / "saved_model.pb").is_file()
    assert accuracy > 0.8


def test_stsb_regression_with_minilm(minilm, tmp_path):
    data = SHARED_DATA / "glue" / "STS-B"
    model_dir = tmp_path / "stsb"
    overrides = ",".join([
        f"task.init_checkpoint={minilm}", f"task.train_data.input_path={data / 'train.tsv'}",
        f"task.validation_data.input_path={data / 'dev.tsv'}", "task.label_field=score",
        "trainer.epochs=2", "trainer.learning_rate=1e-4",
    ])
    run_cli("tfft.cli.train", "--config_file=configs/glue/stsb.yaml", f"--model_dir={model_dir}",
            f"--params_override={overrides}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["num_examples"] == 1500
    assert results["pearson"] > 0.8
