"""``--checkpoint final|best|latest|PATH`` picks the weights that eval, predict and export use.

Two runs on the same sentences, one with every label flipped: the good run's
``latest.weights.h5`` is replaced by the flipped run's weights, so each choice shows in
the accuracy (about 1 for the good weights, about 0 for the flipped ones).
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import run_export, run_train

SETTINGS = ("task.max_seq_length=32,trainer.epochs=3,trainer.train_batch_size=16,trainer.learning_rate=1e-3,"
            "trainer.lr_reference_width=0,runtime.seed=1")


@pytest.fixture(scope="module")
def runs(tiny_bert, sentiment_data, tmp_path_factory):
    """``(model_dir of the good run, a file with the flipped run's weights, the dev file, its labels)``."""
    folder = tmp_path_factory.mktemp("checkpoint_choice")
    train, dev = sentiment_data
    lines = train.read_text().splitlines()
    flipped = folder / "flipped.tsv"
    flipped.write_text("\n".join([lines[0], *(f"{text}\t{1 - int(label)}" for text, label in
                                               (line.rsplit("\t", 1) for line in lines[1:]))]) + "\n")
    for name, data in (("good", train), ("bad", flipped)):
        run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={folder / name}",
                  f"--params_override=task.init_checkpoint={tiny_bert},task.train_data.input_path={data},"
                  f"task.validation_data.input_path={dev},{SETTINGS}")
    flipped_weights = folder / "flipped.weights.h5"
    shutil.copy(folder / "bad" / "checkpoints" / "final.weights.h5", flipped_weights)
    latest = folder / "good" / "checkpoints" / "latest.weights.h5"
    latest.unlink()  # A hard link to final.weights.h5 (the same weights): not written through.
    shutil.copy(flipped_weights, latest)
    labels = [int(row["label"]) for row in csv.DictReader(dev.open(), delimiter="\t")]
    return folder / "good", flipped_weights, dev, labels


def choices(runs) -> dict[str, tuple[str, bool]]:
    """``--checkpoint`` value -> (the file it names, whether those are the good weights)."""
    model_dir, flipped, _, _ = runs
    checkpoints = model_dir / "checkpoints"
    return {"final": (str(checkpoints / "final.weights.h5"), True),
            "best": (str(checkpoints / "best.weights.h5"), True),
            "latest": (str(checkpoints / "latest.weights.h5"), False),
            str(flipped): (str(flipped), False)}


def test_eval_evaluates_the_chosen_weights(runs):
    model_dir = runs[0]
    for choice, (path, good) in choices(runs).items():
        results = run_train(f"--model_dir={model_dir}", "--mode=eval", f"--checkpoint={choice}").results
        assert results["checkpoint"] == path
        assert (results["accuracy"] > 0.9) if good else (results["accuracy"] < 0.1), (choice, results)


def test_predict_predicts_with_the_chosen_weights(runs):
    model_dir, _, _, labels = runs
    for choice, (_, good) in choices(runs).items():
        run_train(f"--model_dir={model_dir}", "--mode=predict", f"--checkpoint={choice}")
        rows = [json.loads(line) for line in (model_dir / "predictions.jsonl").read_text().splitlines()]
        accuracy = np.mean([int(row["label"]) == label for row, label in zip(rows, labels, strict=True)])
        assert (accuracy > 0.9) if good else (accuracy < 0.1), (choice, accuracy)


@pytest.mark.parametrize("choice", ["best", "latest"])
def test_export_exports_the_chosen_weights(runs, choice, tmp_path):
    import tensorflow as tf

    model_dir, _, dev, labels = runs
    run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}", f"--checkpoint={choice}")
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    sentences = [row["sentence"] for row in csv.DictReader(dev.open(), delimiter="\t")]
    predicted = served(text=tf.constant(sentences))["label"].numpy().astype(str).astype(int)
    accuracy = np.mean(predicted == np.array(labels))
    assert (accuracy > 0.9) if choice == "best" else (accuracy < 0.1), accuracy
