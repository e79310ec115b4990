"""tfft-predict: an exported SavedModel on a data file writes the rows tfft-train --mode=predict writes.

One tiny run per task shape (sentence classification, token classification), trained, predicted
and exported once per module. tfft-predict runs in this process as its ``main`` would
(conftest's ``run_predict``), one smoke test runs the command itself.
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Run, run_export, run_predict, run_train

from tfft.config import DataConfig, task_config
from tfft.errors import TfftError
from tfft.tasks import Task, build_task, get_task
from tfft.tasks.sentence import SentenceExample
from tfft.tasks.token_classification import TokenExample

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def assert_one_line_error(run: Run, pattern: str) -> None:
    """Exit status 1 and ``tfft-predict: error: <pattern>`` as the last stderr line, no traceback."""
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert re.match(rf"tfft-predict: error: {pattern}", run.stderr.strip().splitlines()[-1]), run.stderr


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def train_and_export(folder: Path, config_file: str, settings: dict) -> tuple[Path, Path]:
    model_dir, export_dir = folder / "model", folder / "export"
    run_train(f"--config_file={config_file}", f"--model_dir={model_dir}",
              "--params_override=" + ",".join(f"{key}={value}" for key, value in settings.items()))
    run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    return model_dir, export_dir


def predict_mode(model_dir: Path, input_path: Path) -> list[dict]:
    """The rows ``tfft-train --mode=predict`` writes for ``input_path``."""
    run_train(f"--model_dir={model_dir}", "--mode=predict",
              f"--params_override=task.predict_data.input_path={input_path}")
    return read_jsonl(model_dir / "predictions.jsonl")


# --- sentence classification -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory, tiny_bert, sentiment_data):
    """A sentiment run, its export and its dev file (whose labels tfft-predict ignores)."""
    train, dev = sentiment_data
    folder = tmp_path_factory.mktemp("predict_sentiment")
    model_dir, export_dir = train_and_export(folder, "configs/glue/sst2.yaml", {
        "task.init_checkpoint": tiny_bert, "task.train_data.input_path": train,
        "task.validation_data.input_path": dev, "task.max_seq_length": 32, "trainer.epochs": 3,
        "trainer.train_batch_size": 16, "trainer.learning_rate": 1e-3,
        "trainer.lr_reference_width": 0,  # the rate is the tiny encoder's own
    })
    return model_dir, export_dir, dev


def test_sentence_rows_equal_predict_mode(sentiment, tmp_path):
    model_dir, export_dir, dev = sentiment
    expected = predict_mode(model_dir, dev)
    output = tmp_path / "new" / "folder" / "predictions.jsonl"  # Its directory is created.
    run = run_predict(f"--export_dir={export_dir}", f"--input_path={dev}", f"--output_path={output}",
                      "--batch_size=7")
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.fullmatch(rf"wrote 96 predictions to {re.escape(str(output))} \([0-9.]+ examples/s\)\n",
                        run.stdout)
    assert re.search(r"predicted 96 of 96 examples \([0-9.]+ examples/s\)", run.stderr)
    rows = read_jsonl(output)
    assert len(rows) == len(expected) == 96
    assert [row["sentence"] for row in rows] == [row["sentence"] for row in expected]
    assert [row["label"] for row in rows] == [row["label"] for row in expected]
    assert len({row["label"] for row in rows}) == 2  # Both classes: the comparison means something.
    for row, want in zip(rows, expected, strict=True):
        assert row["probabilities"].keys() == want["probabilities"].keys() == {"0", "1"}
        assert np.allclose(list(row["probabilities"].values()), list(want["probabilities"].values()),
                           rtol=0, atol=1e-5)


def failing_predict(*args: str) -> Run:
    return run_predict(*args, check=False)


def test_errors_are_one_line(sentiment, tmp_path):
    model_dir, export_dir, dev = sentiment
    good = [f"--input_path={dev}", f"--output_path={tmp_path / 'out.jsonl'}"]
    missing = tmp_path / "nope"
    assert_one_line_error(failing_predict(f"--export_dir={missing}", *good),
                          rf"--export_dir '{re.escape(str(missing))}' does not exist; pass a directory "
                          r"tfft-export wrote")
    absent = tmp_path / "absent.tsv"
    assert_one_line_error(failing_predict(f"--export_dir={export_dir}", f"--input_path={absent}", good[1]),
                          rf"input file '{re.escape(str(absent))}' does not exist")
    params = re.escape(str(model_dir / "assets" / "params.yaml"))
    assert_one_line_error(failing_predict(f"--export_dir={model_dir}", *good),
                          rf"'{params}' does not exist, so '.*' is not a tfft SavedModel; .*not the training "
                          r"model_dir\)")

    rows = tmp_path / "bad.tsv"
    rows.write_text("sentence\tlabel\ngood film\t1\nthe plot\twas awful\t0\n")
    assert_one_line_error(
        failing_predict(f"--export_dir={export_dir}", f"--input_path={rows}", good[1]),
        rf"{re.escape(str(rows))}:3: expected 2 TSV fields as in the header, found 3; fix or remove the row")
    assert not (tmp_path / "out.jsonl").exists()

    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert_one_line_error(failing_predict(f"--export_dir={export_dir}", good[0], f"--output_path={folder}"),
                          rf"cannot write --output_path '{re.escape(str(folder))}' \(.*\); choose a writable")


def test_an_export_serving_token_ids_is_refused(sentiment, tmp_path, monkeypatch):
    """An export whose tokenizer could not go into the graph serves token ids under serving_default."""
    import tfft.exporting

    model_dir, _, dev = sentiment
    monkeypatch.setattr(tfft.exporting, "_graph_tokenizer", lambda *args: None)
    export_dir = tmp_path / "token_ids"
    run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    run = failing_predict(f"--export_dir={export_dir}", f"--input_path={dev}",
                          f"--output_path={tmp_path / 'out.jsonl'}")
    assert_one_line_error(run, r"serving_default of '.*' takes attention_mask, input_ids, token_type_ids, "
                               r"but tfft-predict sends task 'sentence_classification' raw text \(text\); "
                               r"export the run again with a current tfft-export")
    assert not (tmp_path / "out.jsonl").exists()


# --- token classification --------------------------------------------------------------------


# --- hooks and input settings, without a model -----------------------------------------------


def test_input_is_read_as_the_run_read_its_data():
    from tfft.prediction import input_data

    config = task_config("sentence_classification")
    config.train_data = DataConfig(input_path="train.txt", format="tsv", columns=["sentence", "label"])
    config.validation_data = DataConfig(input_path="dev.txt", format="csv", columns=["id", "sentence"])
    task = get_task(config)
    assert input_data(task, "new.txt") == DataConfig("new.txt", format="csv", columns=["id", "sentence"])
    assert input_data(task, "new.jsonl").format == "auto"  # The suffix names a format.
    assert input_data(task, "new.txt", "tsv", []) == DataConfig("new.txt", format="tsv", columns=[])
    assert input_data(build_task("sentence_classification"), "x.txt").format == "auto"
    # A suffix the task declares names a format too: token classification reads .txt as CoNLL.
    tagger = task_config("token_classification", label_list=TAGS)
    tagger.train_data = DataConfig(input_path="train.jsonl", format="jsonl")
    assert input_data(get_task(tagger), "new.txt").format == "auto"


def test_sentence_pairs_regression_and_multi_label_rows():
    pair = SentenceExample(("a man plays", "a woman plays"), None, "x:2")
    regression = build_task("sentence_regression", text_fields=["sentence1", "sentence2"])
    assert regression.serving_texts([pair]) == {"text": ["a man plays"], "text_pair": ["a woman plays"]}
    rows = regression.served_rows([pair], {"score": np.array([0.123456789], np.float32),
                                           "predictions": np.array([0.123456789], np.float32)})
    assert rows == [{"sentence1": "a man plays", "sentence2": "a woman plays", "score": 0.123457}]

    labels = build_task("multi_label_classification", label_list=["joy", "anger", "fear"])
    rows = labels.served_rows([SentenceExample(("so glad",), None, "x:1")], {
        "labels": np.array([[b"joy", b"", b"fear"]]), "probabilities": np.array([[0.9, 0.1, 0.5]]),
        "logits": np.zeros((1, 3))})
    assert rows == [{"sentence": "so glad", "labels": ["joy", "fear"],
                     "probabilities": {"joy": 0.9, "anger": 0.1, "fear": 0.5}}]


def test_default_rows_hold_the_id_the_texts_and_every_output_decoded():
    example = collections.namedtuple("Example", "id texts")("q1", ("good film",))
    rows = Task.served_rows(build_task("sentence_classification"), [example], {
        "label": np.array([b"1"]), "probabilities": np.array([[0.25, 0.75]], np.float32)})
    assert rows == [{"id": "q1", "text": "good film", "label": "1", "probabilities": [0.25, 0.75]}]


def test_words_the_text_cannot_keep_apart_and_tasks_without_raw_text_are_refused():
    tagger = build_task("token_classification", label_list=TAGS)
    assert tagger.serving_texts([TokenExample(("New", "York"), None, "x:1")]) == {"text": ["New York"]}
    with pytest.raises(TfftError, match=r"^x\.jsonl:2: word 'New York' is empty or holds whitespace"):
        tagger.serving_texts([TokenExample(("in", "New York"), None, "x.jsonl:2")])
    with pytest.raises(TfftError, match=r"^task 'multiple_choice' has no raw-text serving, so tfft-predict "
                                        r"cannot run it; predict with tfft-train --mode=predict"):
        Task.serving_texts(build_task("multiple_choice"), [])  # The default of every task.


def test_the_command_runs_and_fails_in_one_line(tmp_path):
    process = subprocess.run([sys.executable, "-m", "tfft.cli.predict", f"--export_dir={tmp_path / 'x'}",
                              "--input_path=a.tsv", f"--output_path={tmp_path / 'out.jsonl'}"],
                             capture_output=True, text=True, cwd=REPO)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        f"tfft-predict: error: --export_dir '{tmp_path / 'x'}' does not exist; "
        "pass a directory tfft-export wrote")


def test_console_script_is_declared():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert scripts["tfft-predict"].value == "tfft.cli.predict:run"
