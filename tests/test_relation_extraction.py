"""Relation extraction: SemEval-2010 Task 8 files, markers, the official metric, marker pooling, export."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import SHARED_DATA, int32_inputs, restored_model, run_export, run_train, train_files

from tfft import modeling
from tfft.config import DataConfig, build_config
from tfft.data.tokenization import load_tokenizer
from tfft.errors import TfftError
from tfft.tasks import build_task
from tfft.tasks.relation_extraction import RelationExtraction, relation_scores, relation_type

MARKERS = ["<e1>", "</e1>", "<e2>", "</e2>"]
SEMEVAL = SHARED_DATA / "semeval2010_task8"


def task(**settings) -> RelationExtraction:
    return build_task("relation_extraction", **{"max_seq_length": 32, **settings})


def semeval(path) -> DataConfig:
    return DataConfig(input_path=str(path), format="semeval2010")


def test_semeval_release_files_read_with_their_labels():
    train = task().read_examples(semeval(SEMEVAL / "TRAIN_FILE.TXT"))
    assert len(train) == 8000
    assert train[0].texts[0] == ("The system as described above has its greatest application in an arrayed "
                                 "<e1>configuration</e1> of antenna <e2>elements</e2>.")
    assert train[0].label == "Component-Whole(e2,e1)" and train[0].where.endswith("TRAIN_FILE.TXT:1")
    test = task().read_examples(semeval(SEMEVAL / "TEST_FILE_FULL.TXT"))
    assert len(test) == 2717 and sum(e.label == "Other" for e in test) == 454


def test_semeval_blocks_without_relations_are_unlabeled_and_broken_blocks_are_errors(tmp_path):
    path = tmp_path / "TEST_FILE.TXT"
    path.write_bytes(b'1\t"A ""quoted"" <e1>cat</e1> in a <e2>box</e2>."\r\n\r\n'
                     b'2\t"<e2>x</e2> <e1>y</e1>"\r\n')
    examples = task().read_examples(semeval(path), labeled=False)
    assert [e.texts[0] for e in examples] == ['A ""quoted"" <e1>cat</e1> in a <e2>box</e2>.',
                                              "<e2>x</e2> <e1>y</e1>"]
    with pytest.raises(TfftError, match=r"TEST_FILE\.TXT:1: no column 'relation'"):
        task().read_examples(semeval(path))
    path.write_text("just a sentence\nOther\n")
    with pytest.raises(TfftError, match=r"TEST_FILE\.TXT:1: expected 'id<TAB>\"sentence\"'"):
        task().read_examples(semeval(path))


def test_official_macro_f1_counts_direction_and_leaves_other_out():
    gold = ["A(e1,e2)", "A(e1,e2)", "A(e2,e1)", "B(e1,e2)", "Other", "Other"]
    predicted = ["A(e1,e2)", "A(e2,e1)", "A(e2,e1)", "Other", "B(e1,e2)", "Other"]
    # A: 2 right of 3 predicted (one has the wrong direction) and 3 gold; B: 0 of 1 and 1.
    scores = relation_scores(gold, predicted, "Other")
    assert scores["f1_A"] == pytest.approx(2 / 3) and scores["f1_B"] == 0.0
    assert scores["macro_f1"] == pytest.approx(1 / 3)
    assert scores["micro_f1"] == pytest.approx(0.5)  # 2 right of 4 predicted and 4 gold relations
    assert relation_type("Cause-Effect(e2,e1)") == "Cause-Effect"
    assert relation_type("per:title") == "per:title"
    assert relation_scores(gold, gold, "Other")["macro_f1"] == 1.0
    assert "f1_Other" in relation_scores(gold, predicted, "")  # No negative label: every label counts.


def test_official_score_matches_the_scorer_on_its_published_example():
    """The (9+1)-way example of semeval2010_task8_scorer-v1.2's documentation: macro F1 77.24%."""
    types = ["C-E", "C-W", "C-C", "E-D", "E-O", "I-A", "M-C", "M-T", "P-P", "Other"]
    confusion = [[307, 2, 0, 2, 4, 0, 1, 7, 3, 0], [2, 239, 5, 1, 3, 12, 20, 9, 11, 0],
                 [0, 7, 160, 11, 3, 0, 1, 1, 0, 0], [1, 2, 14, 271, 1, 0, 0, 0, 3, 0],
                 [3, 4, 3, 9, 219, 3, 2, 1, 7, 0], [3, 14, 0, 5, 3, 102, 1, 2, 26, 0],
                 [1, 4, 1, 3, 3, 0, 207, 1, 6, 0], [1, 6, 1, 1, 3, 1, 2, 236, 10, 0],
                 [9, 10, 0, 3, 7, 19, 3, 6, 168, 0], [43, 67, 31, 84, 49, 12, 42, 68, 54, 0]]
    gold, predicted = [], []
    for row, counts in zip(types, confusion, strict=True):
        for column, count in zip(types, counts, strict=True):
            gold += [row] * count
            predicted += [column] * count
    assert round(100 * relation_scores(gold, predicted, "Other")["macro_f1"], 2) == 77.24


def test_token_spans_get_markers_inserted(tmp_path):
    path = tmp_path / "tacred.jsonl"
    rows = [{"id": "t1", "token": ["Bill", "Gates", "founded", "Microsoft", "."], "subj_start": 0,
             "subj_end": 1, "obj_start": 3, "obj_end": 3, "relation": "org:founded_by"},
            {"id": "t2", "token": ["It", "hired", "Ann"], "subj_start": 2, "subj_end": 2, "obj_start": 0,
             "obj_end": 0, "relation": "no_relation"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    first, second = task(negative_label="no_relation").read_examples(DataConfig(input_path=str(path)))
    assert first.texts[0] == "<e1> Bill Gates </e1> founded <e2> Microsoft </e2> ."
    assert second.texts[0] == "<e2> It </e2> hired <e1> Ann </e1>"


def test_other_markers_are_config(tiny_bert, tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("sentence\trelation\nthe [[ dog ]] saw the << cat >>\tsaw\n")
    markers = ["[[", "]]", "<<", ">>"]
    relation = task(entity_markers=markers, add_special_tokens=markers)
    (example,) = relation.read_examples(DataConfig(input_path=str(path)))
    relation.prepare([example])
    assert relation.label_names == ["saw"]
    with pytest.raises(TfftError, match=r"data\.tsv:2: no entity marker '<<<' in the text; mark both"):
        task(entity_markers=["[[", "]]", "<<<", ">>"]).read_examples(DataConfig(input_path=str(path)))
    with pytest.raises(TfftError, match=r"entity marker '\[\[' is 2 tokens for this tokenizer; task\.pooling="
                                        r"entity_start needs one: add the markers with task\.add_special"):
        task(entity_markers=markers).set_tokenizer(load_tokenizer(tiny_bert))
    with pytest.raises(TfftError, match=r"task\.entity_markers must be 4 different strings"):
        task(entity_markers=["<e1>", "</e1>", "<e1>", "</e2>"])


def test_labels_from_training_data_put_the_negative_label_first(tmp_path):
    relation = task()
    examples = relation.read_examples(semeval(SEMEVAL / "TRAIN_FILE.TXT"))
    relation.prepare(examples[:300])
    assert relation.label_names[0] == "Other" and relation.config.num_labels == len(relation.label_names)
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\trelation\na <e1>b</e1> c <e2>d</e2>\tUnseen(e1,e2)\n")
    with pytest.raises(TfftError, match=r"dev\.tsv:2: relation 'Unseen\(e1,e2\)' is not in task\.label_list"):
        relation.read_examples(DataConfig(input_path=str(path)))


def test_marker_start_states_feed_the_head(tiny_bert):
    relation = task(init_checkpoint=str(tiny_bert), add_special_tokens=MARKERS, label_list=["Other", "R"],
                    num_labels=2)
    checkpoint, tokenizer = modeling.load_pretrained(relation)
    model, _ = modeling.build_task_model(relation, checkpoint.config(), checkpoint, len(tokenizer))
    batch = tokenizer(["a <e1>dog</e1> and <e2>cat</e2>", "<e2>x</e2> then <e1>y</e1> z"], padding=True,
                      return_token_type_ids=True, return_tensors="np")
    inputs = {name: value.astype(np.int32) for name, value in batch.items()}
    states = np.asarray(model.get_layer("backbone")(inputs)["sequence_output"])
    head = model.get_layer("head")
    e1, e2 = relation.marker_ids
    rows = [np.concatenate([states[r, list(ids).index(e1)], states[r, list(ids).index(e2)]])
            for r, ids in enumerate(inputs["input_ids"])]
    expected = np.stack(rows) @ head.kernel.numpy() + head.bias.numpy()
    np.testing.assert_allclose(model(inputs, training=False), expected, atol=1e-5)


# --- end to end ---------------------------------------------------------------------------------------


def synthetic_relations(count: int, seed: int) -> list[str]:
    """Learnable TSV rows: the verb picks the relation, the marker order its direction."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        first, second = rng.sample(["dog", "cat", "man", "woman", "actors"], 2)
        verb = rng.choice(["loves", "hates", "plays"])
        swap = rng.random() < 0.5
        a, b = ("<e2>", "</e2>"), ("<e1>", "</e1>")
        (o1, c1), (o2, c2) = (a, b) if swap else (b, a)
        relation = "Other" if verb == "plays" else f"{verb.title()}({'e2,e1' if swap else 'e1,e2'})"
        rows.append(f"the {o1}{first}{c1} {verb} the {o2}{second}{c2} .\t{relation}")
    return rows


@pytest.fixture(scope="module")
def relation_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("relation")
    for name, seed, count in (("train.tsv", 5, 320), ("dev.tsv", 6, 60)):
        rows = synthetic_relations(count, seed)
        (folder / name).write_text("sentence\trelation\n" + "\n".join(rows) + "\n")
    train_files("configs/relation/semeval2010_task8.yaml", folder / "model", tiny_bert, folder / "train.tsv",
              folder / "dev.tsv", "task.train_data.format=tsv", "task.validation_data.format=tsv",
              "task.max_seq_length=32", "trainer.epochs=8", "trainer.learning_rate=1e-3",
              "trainer.train_batch_size=16", "task.label_list=[]", "task.num_labels=0")
    return folder


def test_training_learns_relations_and_directions(relation_run):
    results = json.loads((relation_run / "model" / "eval_results.json").read_text())
    assert results["num_examples"] == 60 and results["macro_f1"] >= 0.9  # 4 directed relations + Other
    assert {"accuracy", "micro_f1", "f1_Loves", "f1_Hates"} <= set(results)
    labels = build_config([str(relation_run / "model" / "params.yaml")]).task.label_list
    assert labels == ["Other", "Hates(e1,e2)", "Hates(e2,e1)", "Loves(e1,e2)", "Loves(e2,e1)"]


def test_marker_head_exports_to_pytorch_with_the_same_logits(relation_run):
    import torch
    import transformers
    from safetensors.numpy import load_file

    model_dir, export = relation_run / "model", relation_run / "hf"
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={export}")
    config = json.loads((export / "config.json").read_text())
    marker_ids = config["tfft_head"]["marker_token_ids"]
    encoder = transformers.AutoModel.from_pretrained(str(export)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(export))
    assert tokenizer.convert_tokens_to_ids(["<e1>", "<e2>"]) == marker_ids
    head = load_file(str(export / "model.safetensors"))
    texts = ["the <e1>dog</e1> loves the <e2>cat</e2> .", "the <e2>man</e2> hates the <e1>woman</e1> !"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**batch).last_hidden_state.numpy()
    ids = batch["input_ids"].numpy()
    pooled = np.stack([np.concatenate([states[r, list(row).index(m)] for m in marker_ids])
                       for r, row in enumerate(ids)])
    theirs = pooled @ head["classifier.weight"].T + head["classifier.bias"]

    model, _ = restored_model(model_dir)
    ours = model(int32_inputs(batch), training=False)
    assert np.abs(np.asarray(ours) - theirs).max() <= 1e-4
    assert config["id2label"]["1"] == "Hates(e1,e2)"


def test_cls_pooling_exports_the_sequence_classifier(relation_run, tiny_bert, tmp_path):
    import torch
    import transformers

    model_dir = tmp_path / "model"
    overrides = (f"task.init_checkpoint={tiny_bert},task.train_data.input_path={relation_run / 'train.tsv'},"
                 f"task.validation_data.input_path={relation_run / 'dev.tsv'},task.train_data.format=tsv,"
                 "task.validation_data.format=tsv,task.max_seq_length=32,trainer.epochs=1,task.pooling=cls,"
                 "trainer.learning_rate=1e-3,task.label_list=[],task.num_labels=0")
    run_train("--config_file=configs/relation/semeval2010_task8.yaml", f"--model_dir={model_dir}",
              f"--params_override={overrides}")
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'hf'}")
    torch_model = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf")).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    batch = tokenizer(["the <e1>dog</e1> plays the <e2>cat</e2> ."], return_tensors="pt")
    with torch.no_grad():
        theirs = torch_model(**batch).logits.numpy()
    model, _ = restored_model(model_dir)
    ours = model(int32_inputs(batch), training=False)
    assert np.abs(np.asarray(ours) - theirs).max() <= 1e-4 and theirs.shape == (1, 5)
