"""Every user-facing failure of tfft-train / tfft-export: one line naming the input, no traceback.

Each case stops before any training step. Most run what the entry points' ``main`` does in
this process (conftest's run_train / run_export: a TfftError becomes the same last stderr
line and exit status 1, any other exception fails the test); the command line itself (absl
flags, stray arguments, the exit status and stderr of the real commands) runs as subprocesses.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli, run_export, run_train, write_sentiment_tsv

from tfft.config import build_config, save_yaml


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli_errors_data")
    return {"train": write_sentiment_tsv(folder / "train.tsv", 24, seed=1),
            "dev": write_sentiment_tsv(folder / "dev.tsv", 8, seed=2)}


def overrides(tiny_bert, data, **extra) -> str:
    settings = {
        "task.init_checkpoint": tiny_bert,
        "task.train_data.input_path": data["train"],
        "task.validation_data.input_path": data["dev"],
        "trainer.epochs": 1,
        "trainer.train_batch_size": 8,
        **extra,
    }
    return ",".join(f"{key}={value}" for key, value in settings.items())


def train(model_dir: Path, tiny_bert, data, *args: str, **extra):
    return run_train(f"--model_dir={model_dir}", f"--params_override={overrides(tiny_bert, data, **extra)}",
                     *args, check=False)


def error_lines(process) -> list[str]:
    return [line for line in process.stderr.splitlines() if line.strip()]


def assert_one_line_error(process, program: str, pattern: str) -> None:
    """Non-zero exit, no traceback, and the last stderr line is ``program: error: <pattern>``."""
    assert process.returncode != 0, process.stderr[-2000:]
    assert "Traceback" not in process.stderr, process.stderr[-4000:]
    lines = error_lines(process)
    assert lines, "nothing on stderr"
    assert re.match(rf"{program}: error: {pattern}", lines[-1]), lines[-1]


def assert_not_trained(model_dir: Path) -> None:
    assert not (model_dir / "checkpoints").exists()
    assert not (model_dir / "train_results.json").exists()


def write_rows(path: Path, *rows: str) -> Path:
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


# --- flags and config ------------------------------------------------------------------------


def test_missing_model_dir_is_an_absl_flag_error():
    process = run_cli("tfft.cli.train", "--params_override=trainer.epochs=1", check=False)
    assert process.returncode != 0
    assert "Traceback" not in process.stderr
    # absl's own format: the error line, then its standard hint as the last line.
    *_, error, hint = error_lines(process)
    assert re.match(r"FATAL Flags parsing error: flags model_dir=None, .*: --model_dir must have a value "
                    r"\(only --print_config of a training mode runs without it\)", error), error
    assert hint == "Pass --helpshort or --helpfull to see help on flags."


def console_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """Runs the installed console script ``name`` (as a user types it), from the repository root."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return subprocess.run([str(script), *args], capture_output=True, text=True, cwd=REPO, timeout=900)


@pytest.mark.parametrize(("program", "flags"), [
    ("tfft-train", ["model_dir", "config_file", "params_override", "mode", "checkpoint", "output_format",
                    "tpu", "print_config"]),
    ("tfft-export", ["model_dir", "export_dir", "checkpoint", "format", "quantize", "calibration_examples",
                     "lora_only"]),
    ("tfft-predict", ["export_dir", "input_path", "output_path", "batch_size", "input_format",
                      "input_columns"]),
])
def test_help_lists_the_programs_own_flags(program, flags):
    process = console_script(program, "--help")
    assert "Traceback" not in process.stderr, process.stderr[-4000:]
    assert process.stderr == "", process.stderr  # A quiet start: no TensorFlow or transformers notices.
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", process.stdout, flags=re.MULTILINE)
    assert sorted(listed) == sorted(flags), process.stdout
    assert "absl" not in process.stdout  # absl's own flags stay in --helpfull.


def test_print_config_prints_the_resolved_config_without_a_model_dir(tmp_path):
    args = ["--config_file=configs/glue/sst2.yaml", "--config_file=configs/quickstart.yaml",
            "--params_override=trainer.epochs=2,task.label_list=[neg, pos]", "--tpu=local"]
    process = console_script("tfft-train", *args, "--print_config")
    assert process.returncode == 0 and process.stderr == "", process.stderr[-4000:]
    assert process.stdout.startswith("# Resolved config of tfft-train --mode=train_and_eval;")
    (tmp_path / "printed.yaml").write_text(process.stdout)
    expected = build_config(["configs/glue/sst2.yaml", "configs/quickstart.yaml"],
                            ["trainer.epochs=2,task.label_list=[neg, pos]",
                             {"runtime": {"strategy": "tpu", "tpu": "local"}}])
    assert build_config([str(tmp_path / "printed.yaml")]) == expected
    assert "  # Passes over the training data.\n  epochs: 2\n" in process.stdout
    assert list(tmp_path.iterdir()) == [tmp_path / "printed.yaml"]


def test_print_config_of_eval_is_the_runs_params(tmp_path, tiny_bert, data):
    model_dir = untrained_model_dir(tmp_path / "model", tiny_bert, data)
    before = sorted(model_dir.rglob("*"))
    process = run_cli("tfft.cli.train", f"--model_dir={model_dir}", "--mode=eval", "--print_config",
                      "--params_override=trainer.eval_batch_size=7")
    (tmp_path / "printed.yaml").write_text(process.stdout)
    expected = build_config([str(model_dir / "params.yaml")], "trainer.eval_batch_size=7")
    assert build_config([str(tmp_path / "printed.yaml")]) == expected
    assert sorted(model_dir.rglob("*")) == before
    no_model_dir = run_cli("tfft.cli.train", "--mode=eval", "--print_config", check=False)
    assert "--model_dir must have a value" in no_model_dir.stderr


def test_stray_positional_argument(tmp_path, tiny_bert, data):
    process = run_cli("tfft.cli.train", f"--model_dir={tmp_path / 'model'}",
                      f"--params_override={overrides(tiny_bert, data)}", "sst2.yaml", check=False)
    assert_one_line_error(process, "tfft-train",
                          r"unexpected arguments \['sst2\.yaml'\]; all options are --flags")
    assert not (tmp_path / "model").exists()


def test_unknown_config_key(tmp_path, tiny_bert, data):
    process = train(tmp_path / "model", tiny_bert, data, **{"trainer.lr": 1})
    assert_one_line_error(process, "tfft-train",
                          r"unknown config key 'trainer\.lr'; known keys here: .*learning_rate")
    assert not (tmp_path / "model").exists()


def test_bad_enum_value(tmp_path, tiny_bert, data):
    process = train(tmp_path / "model", tiny_bert, data, **{"runtime.strategy": "gpu"})
    assert_one_line_error(process, "tfft-train",
                          r"config key 'runtime\.strategy' has unknown value 'gpu'; choose one of default, ")
    assert not (tmp_path / "model").exists()


def test_missing_config_file(tmp_path, tiny_bert, data):
    missing = tmp_path / "nope.yaml"
    process = train(tmp_path / "model", tiny_bert, data, f"--config_file={missing}")
    assert_one_line_error(process, "tfft-train", rf"config file '{re.escape(str(missing))}' does not exist")
    assert not (tmp_path / "model").exists()


def test_invalid_yaml_config_names_the_line(tmp_path, tiny_bert, data):
    config = write_rows(tmp_path / "broken.yaml", "task:", "  num_labels: 2",
                        "  max_seq_length: 64: oops", "trainer:", "  epochs: 1")
    process = train(tmp_path / "model", tiny_bert, data, f"--config_file={config}")
    assert_one_line_error(process, "tfft-train",
                          rf"config file '{re.escape(str(config))}:3' is not valid YAML")
    assert not (tmp_path / "model").exists()


# --- input data ------------------------------------------------------------------------------


def test_missing_training_file(tmp_path, tiny_bert, data):
    missing = tmp_path / "missing.tsv"
    process = train(tmp_path / "model", tiny_bert, data, **{"task.train_data.input_path": missing})
    assert_one_line_error(process, "tfft-train", rf"input file '{re.escape(str(missing))}' does not exist")
    assert_not_trained(tmp_path / "model")


def test_malformed_tsv_row_names_file_and_line(tmp_path, tiny_bert, data):
    rows = write_rows(tmp_path / "train.tsv", "sentence\tlabel", "good film\t1", "bad film\t0",
                      "the plot\twas awful\t0", "great acting\t1")
    process = train(tmp_path / "model", tiny_bert, data, **{"task.train_data.input_path": rows})
    assert_one_line_error(process, "tfft-train",
                          rf"{re.escape(str(rows))}:4: expected 2 TSV fields as in the header, found 3")
    assert_not_trained(tmp_path / "model")


def test_unknown_label_names_file_and_line(tmp_path, tiny_bert, data):
    rows = write_rows(tmp_path / "dev.tsv", "sentence\tlabel", "good film\t1", "bad film\tpositive")
    process = train(tmp_path / "model", tiny_bert, data, "--config_file=configs/glue/sst2.yaml",
                    **{"task.validation_data.input_path": rows})
    assert_one_line_error(
        process, "tfft-train",
        rf"{re.escape(str(rows))}:3: label 'positive' is not in task\.label_list \['0', '1'\]",
    )
    assert_not_trained(tmp_path / "model")


def test_out_of_range_jsonl_label(tmp_path, tiny_bert, data):
    rows = write_rows(tmp_path / "train.jsonl", json.dumps({"sentence": "good film", "label": 1}),
                      json.dumps({"sentence": "bad film", "label": 2}))
    process = train(tmp_path / "model", tiny_bert, data, **{"task.train_data.input_path": rows})
    assert_one_line_error(process, "tfft-train",
                          rf"{re.escape(str(rows))}:2: label 2 is out of range for task\.num_labels=2")
    assert_not_trained(tmp_path / "model")


def test_empty_text(tmp_path, tiny_bert, data):
    rows = write_rows(tmp_path / "train.tsv", "sentence\tlabel", "good film\t1", "great\t1", "  \t0")
    process = train(tmp_path / "model", tiny_bert, data, **{"task.train_data.input_path": rows})
    assert_one_line_error(process, "tfft-train", rf"{re.escape(str(rows))}:4: column 'sentence' is empty")
    assert_not_trained(tmp_path / "model")


# --- checkpoints and model_dirs --------------------------------------------------------------


def test_checkpoint_without_config_json(tmp_path, tiny_bert, data):
    folder = Path(shutil.copytree(tiny_bert, tmp_path / "checkpoint"))
    (folder / "config.json").unlink()
    process = train(tmp_path / "model", tiny_bert, data, **{"task.init_checkpoint": folder})
    assert_one_line_error(process, "tfft-train",
                          rf"checkpoint folder '{re.escape(str(folder))}' has no config\.json")
    assert_not_trained(tmp_path / "model")


def test_unsupported_model_type(tmp_path, tiny_bert, data):
    folder = Path(shutil.copytree(tiny_bert, tmp_path / "checkpoint"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    process = train(tmp_path / "model", tiny_bert, data, **{"task.init_checkpoint": folder})
    assert_one_line_error(process, "tfft-train",
                          r"checkpoint model_type 'gpt2' is not supported; supported: albert, bert, "
                          r"distilbert, electra, roberta, xlm-roberta")
    assert_not_trained(tmp_path / "model")


def test_max_seq_length_beyond_the_position_table(tmp_path, tiny_bert, data):
    process = train(tmp_path / "model", tiny_bert, data, "--config_file=configs/glue/sst2.yaml",
                    **{"task.max_seq_length": 65})
    assert_one_line_error(process, "tfft-train", r"task\.max_seq_length 65 is longer than the checkpoint's "
                                                 r"64 positions; lower task\.max_seq_length")
    assert_not_trained(tmp_path / "model")


def test_hf_export_of_a_missing_model_dir(tmp_path):
    process = run_cli("tfft.cli.export", "--format=hf", f"--model_dir={tmp_path / 'nope'}",
                      f"--export_dir={tmp_path / 'hf'}", check=False)
    params = re.escape(str(tmp_path / "nope" / "params.yaml"))
    assert_one_line_error(process, "tfft-export", rf"'{params}' does not exist; --model_dir must be")


def test_eval_on_empty_model_dir(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    process = run_cli("tfft.cli.train", f"--model_dir={model_dir}", "--mode=eval", check=False)
    params = re.escape(str(model_dir / "params.yaml"))
    assert_one_line_error(process, "tfft-train", rf"'{params}' does not exist; --model_dir must be")


def untrained_model_dir(folder: Path, tiny_bert, data) -> Path:
    """A model_dir with params.yaml and assets/ (config, tokenizer) but no checkpoints."""
    folder.mkdir()
    save_yaml(build_config([], overrides(tiny_bert, data)), folder / "params.yaml")
    shutil.copytree(tiny_bert, folder / "assets", ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


def test_export_without_checkpoints(tmp_path, tiny_bert, data):
    model_dir = untrained_model_dir(tmp_path / "model", tiny_bert, data)
    process = run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}", check=False)
    final = re.escape(str(model_dir / "checkpoints" / "final.weights.h5"))
    assert_one_line_error(process, "tfft-export",
                          rf"checkpoint '{final}' does not exist; train into --model_dir first")
    assert not (tmp_path / "export").exists()


def test_export_into_non_empty_directory(tmp_path):
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "saved_model.pb").write_bytes(b"keep me")
    process = run_export(f"--model_dir={tmp_path / 'model'}", f"--export_dir={export_dir}", check=False)
    assert_one_line_error(process, "tfft-export",
                          rf"--export_dir '{re.escape(str(export_dir))}' is not empty; choose a new")
    assert (export_dir / "saved_model.pb").read_bytes() == b"keep me"


def test_export_after_failed_training_says_to_train_first(tmp_path, tiny_bert, data):
    model_dir = tmp_path / "model"
    missing = {"task.validation_data.input_path": tmp_path / "missing.tsv"}
    failed = train(model_dir, tiny_bert, data, **missing)
    assert failed.returncode != 0 and not (model_dir / "params.yaml").exists()  # Bad input writes nothing.
    process = run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}", check=False)
    assert_one_line_error(process, "tfft-export", r".*(train into --model_dir|tfft-train)")
    assert "Hugging Face model folder" not in error_lines(process)[-1]
