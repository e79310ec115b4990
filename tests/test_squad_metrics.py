"""The official SQuAD metrics against hand-computed cases and the official v1.1 script's logic."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import REPO, SHARED_DATA

from tfft.tasks.squad_metrics import exact_match, normalize_answer, squad_scores, token_f1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("an apple a day", "apple day"),
        ("Theatre (the play)", "theatre play"),
        ("  A  ", ""),
        ("U.S.-based", "usbased"),
    ],
)
def test_normalize_answer_as_the_official_script(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Denver Broncos", "Denver Broncos!") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # 2 common of 3 predicted and 2 gold words: P 2/3, R 1.
    assert token_f1("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    # Articles vanish, repeated words count with multiplicity: P 2/2, R 2/3.
    assert token_f1("a b b", "b b c") == pytest.approx(0.8)
    assert token_f1("Carolina", "Denver Broncos") == 0.0


def test_v1_scores_are_best_over_gold_answers_in_percent():
    gold = {
        "q1": ["Denver Broncos", "The Broncos"],
        "q2": ["Carolina Panthers"],
        "q3": ["1990s", "the 1990s decade"],
        "q4": ["Santa Clara"],
    }
    predictions = {"q1": "Denver Broncos", "q2": "Broncos won", "q3": "in 1990s"}  # q4 missing.
    scores = squad_scores(predictions, gold)
    # q3: "in 1990s" vs "1990s": P 1/2, R 1 -> 2/3 (vs "1990s decade": 1/2).
    assert scores == pytest.approx({"exact_match": 25.0, "f1": 100 * (1 + 0 + 2 / 3 + 0) / 4, "total": 4})


def test_v1_and_v2_differ_on_answers_that_normalise_to_nothing():
    # v1.1: empty token lists share no token, so F1 is 0 while exact match is 1.
    assert squad_scores({"q": "the"}, {"q": ["a"]}) == {"exact_match": 100.0, "f1": 0.0, "total": 1}
    # v2.0 drops gold answers that normalise to nothing: the question counts as unanswerable.
    v2 = squad_scores({"q": ""}, {"q": ["a"]}, version_2=True)
    assert v2["exact_match"] == v2["f1"] == 100.0 and v2["NoAns_total"] == 1 and v2["HasAns_total"] == 0


def test_v2_has_answer_and_no_answer_splits_and_best_threshold():
    gold = {"q1": ["Paris"], "q2": [], "q3": [], "q4": ["Rome"]}
    predictions = {"q1": "Paris", "q2": "", "q3": "something", "q4": ""}
    no_answer = {"q1": -5.0, "q2": 3.0, "q3": 2.0, "q4": 1.0}
    scores = squad_scores(predictions, gold, version_2=True, no_answer_scores=no_answer)
    assert scores == pytest.approx({
        "exact_match": 50.0, "f1": 50.0, "total": 4,
        "HasAns_exact_match": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2,
        "NoAns_exact_match": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        # Answering only q1 (threshold -5) gets q1, q2 and q3 right: 3 of 4.
        "best_exact_match": 75.0, "best_exact_match_threshold": -5.0,
        "best_f1": 75.0, "best_f1_threshold": -5.0,
    })


def test_v1_scores_agree_with_the_official_script_on_real_squad():
    """Each question's second gold answer as the prediction, scored against all of them."""
    sys.path.insert(0, str(REPO / "tools"))
    import hf_qa_recipe  # The official v1.1 evaluate(), transcribed without tfft.

    document = json.loads((SHARED_DATA / "squad" / "dev-v1.1-minus-xquad.json").read_text())
    examples = [
        {"id": qa["id"], "answers": {"text": [a["text"] for a in qa["answers"]]}}
        for article in document["data"][:10] for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]
    predictions = {e["id"]: e["answers"]["text"][-1] + (" of it" if i % 3 else "")
                   for i, e in enumerate(examples)}
    ours = squad_scores(predictions, {e["id"]: e["answers"]["text"] for e in examples})
    official = hf_qa_recipe.squad_v1_evaluate(examples, predictions)
    assert 20 < ours["f1"] < 100
    assert ours["exact_match"] == pytest.approx(official["exact_match"], abs=1e-9)
    assert ours["f1"] == pytest.approx(official["f1"], abs=1e-9)
