"""Multiple choice: every layout read, [batch, choices, seq] rows, training, export to PyTorch."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import numpy as np
import pytest
from conftest import (
    SHARED_DATA,
    run_create_tfrecords,
    run_export,
    run_predict,
    run_train,
    saved_model_cli_run,
    train_files,
)
from tiny_checkpoints import FAMILIES, make_tiny_checkpoint

from tfft import modeling
from tfft.config import DataConfig, build_config, save_yaml
from tfft.data.tokenization import load_tokenizer
from tfft.errors import TfftError
from tfft.tasks import build_task, get_task
from tfft.tasks.multiple_choice import ABSENT_LOGIT, MultipleChoice

GOOD, BAD = ["good", "great", "fun", "best"], ["bad", "awful", "boring", "worst"]


def task(**settings) -> MultipleChoice:
    return build_task("multiple_choice", **{"max_seq_length": 32, **settings})


def write_jsonl(path, rows) -> DataConfig:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return DataConfig(input_path=str(path))


def synthetic_ai2(count: int, seed: int) -> list[dict]:
    """Learnable questions: the one candidate with a positive word is right; 3 or 4 candidates."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        size = rng.choice([3, 4])
        nouns = ["film", "plot", "story"]
        texts = [f"the {rng.choice(nouns)} was {word}" for word in rng.sample(BAD, size - 1)]
        answer = rng.randrange(size)
        texts.insert(answer, f"the {rng.choice(nouns)} was {rng.choice(GOOD)}")
        choices = [{"label": label, "text": text} for label, text in zip("ABCD", texts, strict=False)]
        rows.append({"id": f"q{index}", "answerKey": "ABCD"[answer],
                     "question": {"stem": "which one is it ?", "choices": choices}})
    return rows


# --- layouts -----------------------------------------------------------------------------------------


def test_ai2_layout_with_letter_and_digit_labels(tmp_path):
    data = write_jsonl(tmp_path / "arc.jsonl", [
        {"id": "a", "answerKey": "B", "question": {"stem": "Q1?", "choices": [
            {"label": "A", "text": "x"}, {"label": "B", "text": "y"}, {"label": "C", "text": "z"}]}},
        {"id": "b", "answerKey": "4", "fact1": "a fact", "question": {"stem": "Q2?", "choices": [
            {"label": str(i), "text": f"t{i}"} for i in range(1, 5)]}},
    ])
    first, second = task(context_field="fact1").read_examples(data)
    assert (first.id, first.answer, first.labels, first.context) == ("a", 1, ("A", "B", "C"), "")
    assert first.pairs() == [("Q1?", "x"), ("Q1?", "y"), ("Q1?", "z")]
    assert (second.answer, second.labels, second.context) == (3, ("1", "2", "3", "4"), "a fact")
    assert second.pairs()[3] == ("a fact", "Q2? t4")


def test_race_passages_and_questions(tmp_path):
    passage = {"id": "m1.txt", "article": "Tom has a dog.", "questions": ["Tom has a _ .", "Who is it?"],
               "options": [["cat", "dog", "cow", "pig"], ["Tom", "Ann", "Bob", "Sue"]], "answers": ["B", "A"]}
    single = {"example_id": "h7", "article": "A text.", "question": "Why?", "options": ["a", "b", "c", "d"],
              "answer": "D"}
    examples = task().read_examples(write_jsonl(tmp_path / "race.jsonl", [passage, single]))
    assert [(e.id, e.answer) for e in examples] == [("m1.txt-0", 1), ("m1.txt-1", 0), ("h7", 3)]
    assert examples[0].pairs()[1] == ("Tom has a dog.", "Tom has a dog .")  # The blank is filled.
    assert examples[1].pairs()[2] == ("Tom has a dog.", "Who is it? Bob")
    assert examples[0].labels == ("A", "B", "C", "D")


def test_race_release_txt_files_are_json_without_a_format(tmp_path):
    """RACE as released: a folder of ``.txt`` files, one JSON passage each; ``format: auto`` reads them."""
    for number in (1, 2):
        passage = {"id": f"{number}.txt", "article": "Tom has a dog.", "questions": ["Who?"],
                   "options": [["Tom", "Ann"]], "answers": ["A"]}
        (tmp_path / f"{number}.txt").write_text(json.dumps(passage))
    data = DataConfig(input_path=str(tmp_path / "*.txt"))
    examples = task().read_examples(data)
    assert [e.id for e in examples] == ["1.txt-0", "2.txt-0"]
    assert examples == task().read_examples(dataclasses.replace(data, format="json"))


def test_swag_csv_hellaswag_and_plain_layouts(tmp_path):
    swag = tmp_path / "swag.csv"
    swag.write_text("video-id,sent1,sent2,ending0,ending1,ending2,ending3,label\n"
                    'v1,She opens the door.,She,"walks in, slowly.",flies.,sings.,sleeps.,0\n')
    (example,) = task().read_examples(DataConfig(input_path=str(swag)))
    assert example.answer == 0 and example.pairs()[0] == ("She opens the door.", "She walks in, slowly.")
    hella = write_jsonl(tmp_path / "hella.jsonl", [
        {"ind": 4, "ctx_a": "A man sits.", "ctx_b": "he", "endings": ["runs", "eats", "reads", "naps"],
         "label": 2}])
    (example,) = task().read_examples(hella)
    assert (example.id, example.answer, example.pairs()[2]) == ("4", 2, ("A man sits.", "he reads"))
    plain = write_jsonl(tmp_path / "plain.jsonl", [
        {"question": "2+2?", "choices": ["3", "4", "5"], "label": 1},
        {"question": "Sky?", "choices": ["green", "blue"], "label": "blue", "context": "Look up."},
        {"question": "Sea?", "choices": ["wet", "dry"], "label": "A"}])
    answers = [(e.answer, e.labels) for e in task().read_examples(plain)]
    assert answers == [(1, ("0", "1", "2")), (1, ("0", "1")), (0, ("A", "B"))]


@pytest.mark.parametrize(("row", "message"), [
    ({"answerKey": "F", "question": {"stem": "q", "choices": [{"label": "A", "text": "a"},
                                                              {"label": "B", "text": "b"}]}},
     r"answer 'F' is none of the choices' labels A, B; fix the answer"),
    ({"question": "q", "choices": ["a"], "label": 0}, r"a question needs at least 2 candidate answers"),
    ({"question": "q", "choices": ["a", " "], "label": 0}, r"empty question or candidate answer"),
    ({"question": "q", "choices": ["a", "b"]}, r"no answer \(answerKey, answer or label\)"),
    ({"text": "q", "label": 0}, r"no multiple-choice layout found \(fields: text, label\)"),
    ({"question": "q", "choices": ["a", "b", "c", "d", "e"], "label": 0},
     r"question '.*:1' has 5 candidate answers but task\.num_choices is 4; raise task\.num_choices"),
])
def test_bad_questions_are_one_line_errors_naming_the_row(tmp_path, row, message):
    data = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(TfftError, match=rf"^{re.escape(data.input_path)}:1: " + message):
        task(num_choices=4).read_examples(data)


def test_real_commonsenseqa_and_race_files_read_completely():
    folder = SHARED_DATA / "commonsenseqa"
    dev = task().read_examples(DataConfig(input_path=str(folder / "dev_rand_split.jsonl")))
    assert len(dev) == 1221 and {len(e.choices) for e in dev} == {5}
    assert sorted({e.answer for e in dev}) == [0, 1, 2, 3, 4]
    test = task().read_examples(DataConfig(input_path=str(folder / "test_rand_split.jsonl")), labeled=False)
    assert len(test) == 1140 and all(e.answer is None for e in test)
    race = task().read_examples(DataConfig(input_path=str(SHARED_DATA / "race" / "dev_middle.jsonl")))
    assert len(race) == 1436 and len({e.id for e in race}) == 1436 and all(e.context for e in race)


@pytest.mark.parametrize(("path", "length"), [("commonsenseqa/dev_rand_split.jsonl", 64),
                                              ("race/dev_middle.jsonl", 128)])
def test_raw_text_features_in_the_graph_are_training_features(minilm_tokenizer, path, length):
    """Passages, ``_`` blanks filled with the candidate, pair truncation and absent choices as in encode."""
    import tensorflow as tf

    from tfft.data.graph_tokenizers import GraphTokenizer
    from tfft.data.pipeline import inference_dataset, restore_order

    mc = task(num_choices=6, max_seq_length=length)
    examples = mc.read_examples(DataConfig(input_path=str(SHARED_DATA / path), max_examples=200))
    assert any("_" in e.question for e in examples) == ("race" in path)
    padded = [list(e.choices) + [""] * (6 - len(e.choices)) for e in examples]
    ours = mc.text_features({"question": tf.constant([e.question for e in examples]),
                             "context": tf.constant([e.context for e in examples]),
                             "choices": tf.constant(padded)}, GraphTokenizer(minilm_tokenizer))
    dataset, order, count = inference_dataset(mc.encode(examples, minilm_tokenizer), mc.feature_specs,
                                              len(examples))
    (batch,) = list(dataset)  # One batch padded to the longest sequence.
    theirs = {name: restore_order(value.numpy(), order, count) for name, value in batch.items()}
    for name, value in theirs.items():
        expected = value * (theirs["attention_mask"] > 0)  # Absent choices: any ids.
        np.testing.assert_array_equal(ours[name].numpy() * (ours["attention_mask"].numpy() > 0), expected)
    assert (ours["attention_mask"].numpy()[:, 5] == 0).all()


# --- features and model ------------------------------------------------------------------------------


def test_num_choices_comes_from_training_data_and_rows_are_padded(tiny_bert, tmp_path):
    mc = task()
    examples = mc.read_examples(write_jsonl(tmp_path / "train.jsonl", synthetic_ai2(6, seed=1)))
    with pytest.raises(TfftError, match=r"task\.num_choices is 0 and no training text set it"):
        mc.feature_specs  # noqa: B018
    mc.prepare(examples)
    assert mc.config.num_choices == max(len(e.choices) for e in examples) == 4
    assert mc.feature_specs.inputs["input_ids"].shape == (4, None)
    features = mc.encode(examples, load_tokenizer(tiny_bert))
    assert features.sequences.tolist() == [len(e.choices) for e in examples]
    assert len(features.lengths) == sum(features.sequences) and features.labels.tolist() == [
        e.answer for e in examples]


def test_absent_choices_score_nothing(tiny_bert, tmp_path):
    mc = task(num_choices=4, init_checkpoint=str(tiny_bert))
    examples = mc.read_examples(write_jsonl(tmp_path / "data.jsonl", synthetic_ai2(4, seed=2)))
    checkpoint, tokenizer = modeling.load_pretrained(mc)
    model, _ = modeling.build_task_model(mc, checkpoint.config(), checkpoint, len(tokenizer))
    from tfft.evaluation import predict

    outputs, _ = predict(model, mc.encode(examples, tokenizer), mc.feature_specs, 3)
    assert outputs.shape == (4, 4)
    for example, row in zip(examples, outputs, strict=True):
        present = len(example.choices)
        assert (row[present:] == ABSENT_LOGIT).all() and (row[:present] > -100).all()
    rows = mc.predictions(examples, None, outputs)
    assert all(set(r["probabilities"]) == set(e.labels) for r, e in zip(rows, examples, strict=True))
    assert rows[0]["probabilities"][rows[0]["label"]] == max(rows[0]["probabilities"].values())


def in_process_run(checkpoint_dir, model_dir, num_choices: int = 3):
    """A model_dir of an untrained multiple-choice model (random head with a non-zero bias)."""
    config = build_config(overrides={"task": {
        "type": "multiple_choice", "init_checkpoint": str(checkpoint_dir), "max_seq_length": 32,
        "num_choices": num_choices}})
    mc = get_task(config.task)
    checkpoint, tokenizer = modeling.load_pretrained(mc)
    model, backbone = modeling.build_task_model(mc, checkpoint.config(), checkpoint, len(tokenizer))
    model.get_layer("head").bias.assign([0.3])
    (model_dir / modeling.CHECKPOINTS_DIR).mkdir(parents=True)
    model.save_weights(str(model_dir / modeling.CHECKPOINTS_DIR / "final.weights.h5"))
    save_yaml(config, model_dir / modeling.PARAMS_FILE)
    modeling.save_assets(model_dir, backbone, tokenizer, mc)
    return model, tokenizer


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_export_is_the_family_multiple_choice_model_with_the_same_logits(family, tmp_path):
    import torch
    import transformers

    from tfft.exporting import export_hf

    model, tokenizer = in_process_run(make_tiny_checkpoint(family, tmp_path / "checkpoint"), tmp_path / "run")
    export_hf(tmp_path / "run", tmp_path / "hf")
    torch_model = transformers.AutoModelForMultipleChoice.from_pretrained(str(tmp_path / "hf")).eval()
    assert type(torch_model).__name__.endswith("ForMultipleChoice")
    first = ["the movie is good", "a plot"]
    seconds = [["great !", "awful plot and boring acting , not fun", "the"], ["is it ?", "no", "yes it is"]]
    batch = tokenizer([f for f in first for _ in range(3)], [s for row in seconds for s in row],
                      padding=True, return_token_type_ids=True, return_tensors="np")
    inputs = {name: batch[name].reshape(2, 3, -1).astype(np.int32)
              for name in ("input_ids", "token_type_ids", "attention_mask")}
    ours = np.asarray(model(inputs, training=False))
    torch_inputs = {name: torch.tensor(value, dtype=torch.long) for name, value in inputs.items()}
    if family == "distilbert":
        torch_inputs.pop("token_type_ids")
    with torch.no_grad():
        theirs = torch_model(**torch_inputs).logits.numpy()
    assert ours.shape == theirs.shape == (2, 3)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert not np.allclose(ours, ours[0, 0])


# --- end to end ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mc_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiple_choice")
    train = write_jsonl(folder / "train.jsonl", synthetic_ai2(160, seed=3)).input_path
    dev = write_jsonl(folder / "dev.jsonl", synthetic_ai2(40, seed=4)).input_path
    train_files("configs/multiple_choice/commonsenseqa.yaml", folder / "model", tiny_bert, train, dev,
              "task.max_seq_length=32", "trainer.epochs=3", "trainer.train_batch_size=16",
              "trainer.learning_rate=1e-3", "task.num_choices=0")
    return folder


def test_training_learns_and_predict_writes_the_chosen_label(mc_run):
    model_dir = mc_run / "model"
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["num_examples"] == 40 and results["accuracy"] >= 0.6  # chance: about 0.29
    assert build_config([str(model_dir / "params.yaml")]).task.num_choices == 4
    run_train(f"--model_dir={model_dir}", "--mode=predict")
    rows = [json.loads(line) for line in (model_dir / "predictions.jsonl").read_text().splitlines()]
    gold = {row["id"]: row["answerKey"] for row in synthetic_ai2(40, seed=4)}
    assert len(rows) == 40 and set(rows[0]) == {"id", "label", "answer", "probabilities"}
    assert np.mean([row["label"] == gold[row["id"]] for row in rows]) == pytest.approx(results["accuracy"])
    assert all(abs(sum(row["probabilities"].values()) - 1) < 1e-5 for row in rows)


def test_saved_model_takes_choices_and_reproduces_accuracy(mc_run, tiny_bert):
    import tensorflow as tf

    export_dir = mc_run / "export"
    run_export(f"--model_dir={mc_run / 'model'}", f"--export_dir={export_dir}")
    serve = tf.saved_model.load(str(export_dir)).signatures["serve_token_ids"]
    assert serve.structured_input_signature[1]["input_ids"].shape.as_list() == [None, 4, None]
    mc = get_task(build_config([str(export_dir / "assets" / "params.yaml")]).task)
    examples = mc.read_examples(DataConfig(input_path=str(mc_run / "dev.jsonl")))
    from tfft.data.pipeline import inference_dataset, restore_order

    features = mc.encode(examples, load_tokenizer(export_dir / "assets"))
    dataset, order, count = inference_dataset(features, mc.feature_specs, 16)
    probabilities = restore_order(np.concatenate([serve(**batch)["probabilities"] for batch in dataset]),
                                  order, count)
    expected = json.loads((mc_run / "model" / "eval_results.json").read_text())["accuracy"]
    assert np.mean(probabilities.argmax(-1) == features.labels) == pytest.approx(expected)
    absent = [i for i, e in enumerate(examples) if len(e.choices) == 3]
    assert absent and (probabilities[absent, 3] == 0).all()
    raw = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        question=tf.constant([e.question for e in examples]),
        context=tf.constant([e.context for e in examples]),
        choices=tf.constant([list(e.choices) + [""] * (4 - len(e.choices)) for e in examples]))
    np.testing.assert_allclose(raw["probabilities"], probabilities, atol=1e-6)
    chosen = [e.choices[c] for e, c in zip(examples, raw["choice"].numpy(), strict=True)]
    assert [answer.decode() for answer in raw["answer"].numpy()] == chosen
    served = saved_model_cli_run(export_dir, {"question": ["which one is it ?"], "context": [""],
                                              "choices": [["the plot was bad", "the film was fun", "", ""]]},
                                 mc_run / "cli")
    assert served["probabilities"][0, 2:].tolist() == [0, 0]
    output, model_dir = mc_run / "served.jsonl", mc_run / "model"
    run_predict(f"--export_dir={export_dir}", f"--input_path={mc_run / 'dev.jsonl'}",
                f"--output_path={output}")
    served = [json.loads(line) for line in output.read_text().splitlines()]
    run_train(f"--model_dir={model_dir}", "--mode=predict")
    expected = [json.loads(line) for line in (model_dir / "predictions.jsonl").read_text().splitlines()]
    assert [row["label"] for row in served] == [row["label"] for row in expected]
    for ours, theirs in zip(served, expected, strict=True):
        assert ours["probabilities"] == pytest.approx(theirs["probabilities"], abs=2e-6)
    # The Python API: (question, context, choices) from the run and from the export.
    import tfft

    texts = [(e.question, e.context, list(e.choices)) for e in examples[:10]]
    from_run, from_export = tfft.predict(model_dir, texts), tfft.predict(export_dir, texts)
    assert [row["answer"] for row in from_run] == [row["answer"] for row in from_export] == [
        row["answer"] for row in expected[:10]]
    for ours, theirs in zip(from_export, from_run, strict=True):
        assert ours["probabilities"] == pytest.approx(theirs["probabilities"], abs=2e-6)


def test_tfrecord_rows_hold_every_choice(mc_run, tiny_bert, tmp_path):
    train, dev = mc_run / "train.jsonl", mc_run / "dev.jsonl"
    overrides = (f"task.init_checkpoint={tiny_bert},task.train_data.input_path={train},"
                 f"task.validation_data.input_path={dev},task.max_seq_length=32,task.num_choices=0")
    run_create_tfrecords("--config_file=configs/multiple_choice/commonsenseqa.yaml",
                         f"--output_dir={tmp_path}", f"--params_override={overrides}", "--num_shards=2")
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["splits"]["train"]["inputs"]["input_ids"] == [4, 32]
    model_dir = tmp_path / "model"

    def train(num_choices: int, check: bool = True):
        return run_train("--config_file=configs/multiple_choice/commonsenseqa.yaml",
                         f"--model_dir={model_dir}", "--params_override=" + ",".join([
                             f"task.init_checkpoint={tiny_bert}", "task.max_seq_length=32",
                             "trainer.epochs=1", f"task.train_data.input_path={tmp_path}/train-*.tfrecord",
                             f"task.num_choices={num_choices}",
                             f"task.validation_data.input_path={tmp_path}/validation-*.tfrecord"]),
                         check=check)

    train(4)
    assert json.loads((model_dir / "eval_results.json").read_text())["num_examples"] == 40
    error = train(5, check=False).stderr.strip().splitlines()[-1]
    assert error.endswith("train-*.tfrecord' holds input_ids of shape [4, 32] per row but this config needs "
                          "[5, 32]; recreate the files with this config")
