"""Entity-level metrics: hand-computed cases, and agreement with seqeval (conlleval rules)."""

from __future__ import annotations

import random

import pytest
from conftest import SHARED_DATA

from tfft.tasks.entities import entity_scores, extract_entities, first_inconsistency, split_tag


@pytest.mark.parametrize("tags, expected", [
    # IOB2.
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    # IOB1: entities begin with I-; B- only separates two adjacent entities of one type.
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]),
    # I- after O starts an entity; a type switch inside a run starts a new one.
    (["O", "I-ORG", "I-ORG", "I-LOC"], [("ORG", 1, 3), ("LOC", 3, 4)]),
    (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
    # BIOES: S- is a one-token entity, E- closes one.
    (["S-PER", "B-ORG", "I-ORG", "E-ORG", "S-ORG"], [("PER", 0, 1), ("ORG", 1, 4), ("ORG", 4, 5)]),
    # An entity at the end of the sentence is closed there.
    (["O", "O", "B-MISC", "I-MISC"], [("MISC", 2, 4)]),
    (["O", "O"], []),
])
def test_extract_entities(tags, expected):
    assert extract_entities(tags) == expected


def test_scores_by_hand():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC", "B-PER"]]
    scores = entity_scores(true, predicted)
    # Gold: PER(0-2), LOC(3), ORG(0), PER(2) = 4; found: PER(0-2), ORG(0), LOC(1), PER(2) = 4;
    # correct: PER(0-2), ORG(0), PER(2) = 3.
    assert scores["precision"] == pytest.approx(3 / 4)
    assert scores["recall"] == pytest.approx(3 / 4)
    assert scores["f1"] == pytest.approx(3 / 4)
    # Tokens: 7, wrong: LOC->O and O->B-LOC = 2.
    assert scores["accuracy"] == pytest.approx(5 / 7)
    # PER: 2 gold, 2 found, 2 correct. LOC: 1 gold, 1 found, 0 correct. ORG: 1/1/1.
    assert (scores["f1_PER"], scores["f1_LOC"], scores["f1_ORG"]) == (1.0, 0.0, 1.0)
    assert (scores["support_PER"], scores["support_LOC"]) == (2.0, 1.0)


def test_precision_and_recall_differ_and_empty_cases_are_zero():
    # Gold: 2 PER; found: 1 PER (correct) -> precision 1, recall 1/2, F1 2/3.
    scores = entity_scores([["B-PER", "O", "B-PER"]], [["B-PER", "O", "O"]])
    assert (scores["precision"], scores["recall"]) == (1.0, 0.5)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert entity_scores([["O"]], [["O"]])["f1"] == 0.0


def test_entities_do_not_cross_sentences():
    # As one sentence, I-PER would continue the entity; across sentences it starts a new one.
    scores = entity_scores([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])
    assert scores["support_PER"] == 2.0 and scores["f1"] == 1.0


@pytest.mark.parametrize("tags, scheme, index", [
    (["B-PER", "I-PER", "O"], "iob2", None),
    (["O", "I-PER"], "iob2", 1),
    (["B-PER", "I-LOC"], "iob2", 1),
    (["I-PER", "B-PER", "O", "I-LOC"], "iob1", None),
    (["O", "B-PER"], "iob1", 1),
    (["S-PER", "B-LOC", "E-LOC"], "bioes", None),
    (["B-LOC", "O"], "bioes", 0),
    (["O", "E-LOC"], "bioes", 1),
    (["S-PER"], "iob2", 0),
])
def test_first_inconsistency(tags, scheme, index):
    assert first_inconsistency(tags, scheme) == index


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"tag 'X-PER' is neither O nor B-, I-, E- or S- followed by a type"):
        split_tag("X-PER")
    with pytest.raises(ValueError, match=r"tag scheme 'bio' is unknown; use one of iob1, iob2, bioes"):
        first_inconsistency(["O"], "bio")
    with pytest.raises(ValueError, match=r"sentence 1 has 2 gold tags but 1 predicted"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])


# --- agreement with seqeval -----------------------------------------------------------------


def assert_agrees_with_seqeval(true, predicted):
    seqeval = pytest.importorskip("seqeval.metrics")
    ours = entity_scores(true, predicted)
    assert ours["precision"] == pytest.approx(seqeval.precision_score(true, predicted), abs=1e-12)
    assert ours["recall"] == pytest.approx(seqeval.recall_score(true, predicted), abs=1e-12)
    assert ours["f1"] == pytest.approx(seqeval.f1_score(true, predicted), abs=1e-12)
    assert ours["accuracy"] == pytest.approx(seqeval.accuracy_score(true, predicted), abs=1e-12)
    report = seqeval.classification_report(true, predicted, output_dict=True, zero_division=0)
    for kind in {key.split("_", 1)[1] for key in ours if key.startswith("support_")}:
        if kind in report:
            assert ours[f"f1_{kind}"] == pytest.approx(report[kind]["f1-score"], abs=1e-12)
            assert ours[f"support_{kind}"] == report[kind]["support"]


@pytest.mark.parametrize("tag_set", [
    ["O", "I-A", "B-A", "I-B", "B-B"],
    ["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"],
])
def test_random_sequences_agree_with_seqeval(tag_set):
    rng = random.Random(0)
    true = [[rng.choice(tag_set) for _ in range(rng.randint(1, 15))] for _ in range(300)]
    predicted = [[tag if rng.random() < 0.7 else rng.choice(tag_set) for tag in row] for row in true]
    assert_agrees_with_seqeval(true, predicted)


def test_conll2003_test_set_agrees_with_seqeval():
    from tfft.data.sources import read_records

    records = read_records(str(SHARED_DATA / "conll2003" / "test.txt"), "conll")
    true = [record.fields["columns"][-1] for record in records]
    predicted, count = [], 0
    for row in true:
        guess = []
        for tag in row:
            count += 1
            if tag != "O" and count % 7 == 0:
                tag = tag[:2] + {"PER": "ORG", "ORG": "LOC", "LOC": "MISC", "MISC": "PER"}[tag[2:]]
            elif tag.startswith("B-") and count % 11 == 0:
                tag = "O"
            elif tag == "O" and count % 13 == 0:
                tag = "B-MISC"
            guess.append(tag)
        predicted.append(guess)
    assert_agrees_with_seqeval(true, predicted)
    assert 0.5 < entity_scores(true, predicted)["f1"] < 0.95
