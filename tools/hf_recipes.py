r"""Hugging Face PyTorch recipes the benchmark runs beside tfft, one function per task kind.

Each reads the data with its own code (not tfft's), tokenizes as the Hugging Face
example scripts do, trains with ``transformers.Trainer`` and returns the peer's
figures: ``examples_per_second``, ``train_seconds``, ``metric`` and extra metrics.

- :func:`multiple_choice`: ``AutoModelForMultipleChoice`` as in ``run_swag.py``
  (every candidate paired with the passage or question, ``DataCollatorForMultipleChoice``),
  on AI2 JSON Lines (CommonsenseQA) or RACE passages (JSON Lines), accuracy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def _fit_predict(model, arguments, train, evaluation, collator):
    """Trains with ``Trainer``; returns (evaluation logits, training seconds)."""
    import transformers

    trainer = transformers.Trainer(model=model, args=arguments, train_dataset=train, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return trainer.predict(evaluation).predictions, seconds


class _Rows:
    """A list of tokenized items as a ``torch`` dataset."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def _questions(path: Path, limit: int) -> list[tuple[str, str, list[str], int]]:
    """``(passage, question, candidates, answer)`` of AI2 or RACE JSON Lines (first ``limit`` records)."""
    questions = []
    with path.open() as file:
        for number, line in enumerate(file):
            if limit and number >= limit:
                break
            record = json.loads(line)
            if "article" in record:  # RACE: one passage, several questions.
                for question, options, answer in zip(record["questions"], record["options"],
                                                     record["answers"], strict=True):
                    questions.append((record["article"], question, options, "ABCD".index(answer)))
            else:
                choices = record["question"]["choices"]
                labels = [choice["label"] for choice in choices]
                questions.append(("", record["question"]["stem"], [c["text"] for c in choices],
                                  labels.index(record["answerKey"])))
    return questions


def _candidate_pairs(passage: str, question: str, candidates: list[str]) -> tuple[list[str], list[str]]:
    """``run_swag.py``'s pairs: the passage (or question) first, the candidate second."""
    if not passage:
        return [question] * len(candidates), candidates
    seconds = [question.replace("_", c) if "_" in question else f"{question} {c}" for c in candidates]
    return [passage] * len(candidates), seconds


def multiple_choice(checkpoint: str, train_file: Path, eval_file: Path, max_train: int, max_length: int,
                    arguments) -> dict:
    """``AutoModelForMultipleChoice`` fine-tuned and scored by accuracy.

    Args:
        checkpoint: Hugging Face folder.
        train_file: Training JSON Lines (first ``max_train`` records; 0 = all).
        eval_file: Evaluation JSON Lines (all records).
        max_train: Training records (questions; RACE: passages).
        max_length: Truncation length of each (passage, question + candidate) pair.
        arguments: ``rows -> TrainingArguments``.
    """
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)

    def encode(questions):
        items = []
        for passage, question, candidates, answer in questions:
            first, second = _candidate_pairs(passage, question, candidates)
            encoded = tokenizer(first, second, truncation=True, max_length=max_length)
            items.append({**{key: list(values) for key, values in encoded.items()}, "labels": answer})
        return _Rows(items)

    train = encode(_questions(train_file, max_train))
    evaluation = encode(_questions(eval_file, 0))
    model = transformers.AutoModelForMultipleChoice.from_pretrained(checkpoint)
    logits, seconds = _fit_predict(model, arguments(len(train)), train, evaluation,
                                   transformers.DataCollatorForMultipleChoice(tokenizer))
    labels = np.array([item["labels"] for item in evaluation.items])
    epochs = arguments(len(train)).num_train_epochs
    return {"examples_per_second": len(train) * epochs / seconds, "train_seconds": seconds,
            "train_examples": len(train), "metric": float(np.mean(logits.argmax(-1) == labels))}
