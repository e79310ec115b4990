"""Entity-level scores for tagged sequences, with conlleval's chunk rules.

Chunks are read as conlleval.pl reads them (and ``seqeval`` in its default mode): a
chunk starts at ``B-``/``S-``, at an ``I-``/``E-`` that follows ``O``, ``E-`` or
``S-``, or where the type changes; it ends before such a start and after ``E-``/``S-``.
So IOB1 (entities may begin with ``I-``), IOB2 and BIOES are all read correctly with
the same rules. An entity counts as found only with the exact span and type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = ("B", "I", "E", "S")


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``.

    Raises:
        ValueError: for a tag that is neither ``O`` nor ``{B,I,E,S}-TYPE``.
    """
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    if prefix not in _PREFIXES or not kind:
        raise ValueError(f"tag '{tag}' is neither O nor B-, I-, E- or S- followed by a type")
    return prefix, kind


def _ends(previous: str, previous_type: str, prefix: str, kind: str) -> bool:
    return (
        previous in ("E", "S")
        or (previous in ("B", "I") and prefix in ("B", "S", "O"))
        or (previous != "O" and previous_type != kind)
    )


def _starts(previous: str, previous_type: str, prefix: str, kind: str) -> bool:
    return (
        prefix in ("B", "S")
        or (previous in ("E", "S", "O") and prefix in ("I", "E"))
        or (prefix != "O" and previous_type != kind)
    )


def extract_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence as ``(type, start, end)`` with ``end`` exclusive."""
    entities = []
    previous, previous_type, begin = "O", "", 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag)
        if _ends(previous, previous_type, prefix, kind):
            entities.append((previous_type, begin, index))
        if _starts(previous, previous_type, prefix, kind):
            begin = index
        previous, previous_type = prefix, kind
    return entities


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def entity_scores(true: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision/recall/F1, per-type scores and token accuracy.

    Counts are summed over every sentence before dividing (not averaged per sentence
    or batch); entities never cross sentences. Undefined ratios are 0.

    Args:
        true: Gold tags, one list per sentence.
        predicted: Predicted tags, the same shape.

    Returns:
        ``precision``, ``recall``, ``f1``, ``accuracy`` and, for every entity type in
        either, ``precision_<T>``, ``recall_<T>``, ``f1_<T>``, ``support_<T>``.

    Raises:
        ValueError: if a sentence's predicted and gold tags differ in length.
    """
    gold_count, found_count, correct_count = Counter(), Counter(), Counter()
    tokens = right = 0
    for index, (gold, guess) in enumerate(zip(true, predicted, strict=True)):
        if len(gold) != len(guess):
            raise ValueError(f"sentence {index} has {len(gold)} gold tags but {len(guess)} predicted")
        gold_entities, found_entities = set(extract_entities(gold)), set(extract_entities(guess))
        gold_count.update(kind for kind, _, _ in gold_entities)
        found_count.update(kind for kind, _, _ in found_entities)
        correct_count.update(kind for kind, _, _ in gold_entities & found_entities)
        tokens += len(gold)
        right += sum(a == b for a, b in zip(gold, guess, strict=True))
    precision = _ratio(sum(correct_count.values()), sum(found_count.values()))
    recall = _ratio(sum(correct_count.values()), sum(gold_count.values()))
    scores = {"precision": precision, "recall": recall, "f1": _f1(precision, recall),
              "accuracy": _ratio(right, tokens)}
    for kind in sorted(set(gold_count) | set(found_count)):
        kind_precision = _ratio(correct_count[kind], found_count[kind])
        kind_recall = _ratio(correct_count[kind], gold_count[kind])
        scores.update({
            f"precision_{kind}": kind_precision, f"recall_{kind}": kind_recall,
            f"f1_{kind}": _f1(kind_precision, kind_recall), f"support_{kind}": float(gold_count[kind]),
        })
    return scores


def first_inconsistency(tags: Sequence[str], scheme: str) -> int | None:
    """The index of the first tag the strict ``scheme`` does not allow there, or None.

    - ``iob2``: ``I-X`` must follow ``B-X`` or ``I-X``;
    - ``iob1``: ``B-X`` only directly after an ``X`` entity (else it is written ``I-X``);
    - ``bioes``: ``I-X``/``E-X`` must follow ``B-X``/``I-X``, and ``B-X``/``I-X`` must be
      followed by ``I-X``/``E-X``.

    Raises:
        ValueError: for an unknown scheme.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"tag scheme '{scheme}' is unknown; use one of {', '.join(SCHEMES)}")
    parts = [split_tag(tag) for tag in tags] + [("O", "")]
    previous = ("O", "")
    for index, (prefix, kind) in enumerate(parts[:-1]):
        inside = previous[0] in ("B", "I") and previous[1] == kind
        following = parts[index + 1]
        continues = following[0] in ("I", "E") and following[1] == kind
        if (
            (scheme == "iob2" and prefix == "I" and not inside)
            or (scheme == "iob1" and prefix == "B" and not (previous[0] != "O" and previous[1] == kind))
            or (scheme == "bioes" and prefix in ("I", "E") and not inside)
            or (scheme == "bioes" and prefix in ("B", "I") and not continues)
            or (scheme in ("iob1", "iob2") and prefix in ("E", "S"))
        ):
            return index
        previous = (prefix, kind)
    return None
