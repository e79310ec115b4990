"""The official SQuAD scores: exact match and token F1 (v1.1), with HasAns/NoAns splits (v2.0).

Answers are normalised as the official evaluation scripts do (lower case, no
punctuation, no articles ``a``/``an``/``the``, single spaces). Each prediction is
scored against its best-matching gold answer; scores are percentages (0-100).
"""

from __future__ import annotations

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and articles removed, whitespace collapsed."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalised answers are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str, version_2: bool = False) -> float:
    """F1 of the normalised answers' word bags; v2.0 scores two empty answers 1 (v1.1: 0)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not predicted or not expected):
        return float(predicted == expected)
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(answers: list[str], version_2: bool) -> list[str]:
    """v2.0 drops answers that normalise to nothing and scores unanswerable questions against ''."""
    if not version_2:
        return answers
    return [answer for answer in answers if normalize_answer(answer)] or [""]


def squad_scores(
    predictions: dict[str, str],
    gold: dict[str, list[str]],
    version_2: bool = False,
    no_answer_scores: dict[str, float] | None = None,
) -> dict[str, float]:
    """Official SQuAD metrics of ``predictions`` against ``gold``.

    Args:
        predictions: Question id -> predicted answer ('' for "no answer").
        gold: Question id -> gold answer texts (empty for unanswerable questions).
        version_2: Score as SQuAD 2.0 (adds ``HasAns_*``/``NoAns_*``).
        no_answer_scores: v2.0: question id -> how strongly "no answer" is preferred
            (higher: more likely unanswerable); adds the best threshold and its scores.

    Returns:
        ``exact_match``, ``f1`` and ``total``; with ``version_2`` also ``HasAns_exact_match``,
        ``HasAns_f1``, ``HasAns_total``, ``NoAns_exact_match``, ``NoAns_f1``, ``NoAns_total``
        and, given ``no_answer_scores``, ``best_exact_match``, ``best_exact_match_threshold``,
        ``best_f1``, ``best_f1_threshold``. A question without a prediction scores 0.
    """
    exact, f1 = {}, {}
    for qid, answers in gold.items():
        candidates = _gold_answers(answers, version_2)
        prediction = predictions.get(qid)
        exact[qid] = 0.0 if prediction is None else max(exact_match(prediction, a) for a in candidates)
        f1[qid] = 0.0 if prediction is None else max(
            token_f1(prediction, a, version_2) for a in candidates
        )
    results = _averages(exact, f1, list(gold), "")
    if not version_2:
        return results
    has_answer = {qid: bool(_gold_answers(answers, True)[0]) for qid, answers in gold.items()}
    results.update(_averages(exact, f1, [q for q in gold if has_answer[q]], "HasAns_"))
    results.update(_averages(exact, f1, [q for q in gold if not has_answer[q]], "NoAns_"))
    if no_answer_scores is not None:
        for name, scores in (("exact_match", exact), ("f1", f1)):
            best, threshold = _best_threshold(predictions, scores, no_answer_scores, has_answer)
            results[f"best_{name}"], results[f"best_{name}_threshold"] = best, threshold
    return results


def _averages(exact: dict, f1: dict, ids: list[str], prefix: str) -> dict[str, float]:
    if not ids:
        return {f"{prefix}total": 0}
    return {
        f"{prefix}exact_match": 100.0 * sum(exact[q] for q in ids) / len(ids),
        f"{prefix}f1": 100.0 * sum(f1[q] for q in ids) / len(ids),
        f"{prefix}total": len(ids),
    }


def _best_threshold(predictions, scores, no_answer_scores, has_answer) -> tuple[float, float]:
    """The official v2.0 search: the no-answer threshold that maximises the average score."""
    current = best = sum(1 for answerable in has_answer.values() if not answerable)
    threshold = 0.0
    for qid in sorted(no_answer_scores, key=no_answer_scores.get):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions.get(qid):
            current -= 1
        if current > best:
            best, threshold = current, no_answer_scores[qid]
    return 100.0 * best / len(scores), threshold
