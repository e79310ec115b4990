r"""Hugging Face PyTorch recipes the benchmark runs beside tfft, one function per task kind.

Each reads the data with its own code (not tfft's), tokenizes as the Hugging Face
example scripts do, trains with ``transformers.Trainer`` and returns the peer's
figures: ``examples_per_second``, ``train_seconds``, ``metric`` and extra metrics.

- :func:`multiple_choice`: ``AutoModelForMultipleChoice`` as in ``run_swag.py``
  (every candidate paired with the passage or question, ``DataCollatorForMultipleChoice``),
  on AI2 JSON Lines (CommonsenseQA) or RACE passages (JSON Lines), accuracy;
- :func:`relation`: ``AutoModelForSequenceClassification`` on SemEval-2010 Task 8's
  marked sentences, the markers added as special tokens (``resize_token_embeddings``),
  the official macro F1;
- :func:`multi_label`: ``AutoModelForSequenceClassification`` with
  ``problem_type=multi_label_classification`` on GoEmotions' TSVs, macro F1 at 0.5;
- :func:`regression`: ``AutoModelForSequenceClassification`` with one output on GLUE
  STS-B's TSVs, as ``run_glue.py`` trains it, Pearson and Spearman correlation;
- :func:`masked_lm`: ``AutoModelForMaskedLM`` as ``run_mlm.py`` trains it on a text file
  (one document per line), perplexity and masked-token accuracy before and after.
"""

from __future__ import annotations

import csv
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


#: SemEval-2010 Task 8's entity markers, added to the tokenizer as special tokens.
MARKERS = ["<e1>", "</e1>", "<e2>", "</e2>"]


def _semeval(path: Path, limit: int) -> tuple[list[str], list[str]]:
    """Marked sentences and relations of a SemEval-2010 Task 8 release file (4-line blocks)."""
    blocks = [block.strip().splitlines() for block in path.read_text().replace("\r", "").split("\n\n")]
    blocks = [block for block in blocks if block][:limit or None]
    sentences = [block[0].split("\t", 1)[1].strip()[1:-1] for block in blocks]
    return sentences, [block[1].strip() for block in blocks]


def semeval_macro_f1(gold: list[str], predicted: list[str]) -> float:
    """The official (9+1)-way score with directionality: macro F1 over the 9 relations."""
    kind = [label.split("(")[0] for label in gold]
    guessed = [label.split("(")[0] for label in predicted]
    scores = []
    for name in sorted(set(kind) - {"Other"}):
        right = sum(g == p and k == name for g, p, k in zip(gold, predicted, kind, strict=True))
        precision = right / max(guessed.count(name), 1)
        recall = right / kind.count(name)
        scores.append(2 * precision * recall / (precision + recall) if right else 0.0)
    return float(np.mean(scores))


def relation(checkpoint: str, train_file: Path, eval_file: Path, max_train: int, max_length: int,
             arguments) -> dict:
    """``AutoModelForSequenceClassification`` on marked sentences, the markers as added special tokens."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    train_texts, train_labels = _semeval(train_file, max_train)
    eval_texts, eval_labels = _semeval(eval_file, 0)
    names = sorted(set(train_labels) | set(eval_labels))

    def encode(texts, labels):
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        return _Rows([{**{key: values[i] for key, values in encoded.items()}, "labels": names.index(label)}
                      for i, label in enumerate(labels)])

    train, evaluation = encode(train_texts, train_labels), encode(eval_texts, eval_labels)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=len(names))
    model.resize_token_embeddings(len(tokenizer))
    logits, seconds = _fit_predict(model, arguments(len(train)), train, evaluation,
                                   transformers.DataCollatorWithPadding(tokenizer))
    predicted = [names[index] for index in logits.argmax(-1)]
    epochs = arguments(len(train)).num_train_epochs
    return {"examples_per_second": len(train) * epochs / seconds, "train_seconds": seconds,
            "train_examples": len(train), "metric": semeval_macro_f1(eval_labels, predicted),
            "accuracy": float(np.mean([p == g for p, g in zip(predicted, eval_labels, strict=True)]))}


def _goemotions(path: Path, limit: int) -> tuple[list[str], list[list[int]]]:
    """Texts and label ids of a GoEmotions TSV (no header; text, ids, comment id; no quoting)."""
    with path.open(newline="") as file:
        rows = list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))[:limit or None]
    return [row[0] for row in rows], [[int(i) for i in row[1].split(",")] for row in rows]


def multi_label(checkpoint: str, train_file: Path, eval_file: Path, max_train: int, max_length: int,
                arguments) -> dict:
    """``AutoModelForSequenceClassification`` with ``problem_type=multi_label_classification``.

    The labels are those of ``labels.txt`` beside the data; scores at threshold 0.5, and the
    macro F1 at the best of the thresholds tfft sweeps (0.05 to 0.95).
    """
    import transformers

    names = (train_file.parent / "labels.txt").read_text().split()
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)

    def encode(path, limit):
        texts, ids = _goemotions(path, limit)
        encoded = tokenizer(texts, truncation=True, max_length=max_length)
        hot = np.zeros((len(texts), len(names)), dtype=np.float32)
        for row, labels in enumerate(ids):
            hot[row, labels] = 1.0
        return _Rows([{**{key: values[i] for key, values in encoded.items()}, "labels": hot[i].tolist()}
                      for i in range(len(texts))]), hot

    (train, _), (evaluation, gold) = encode(train_file, max_train), encode(eval_file, 0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=len(names), problem_type="multi_label_classification")
    logits, seconds = _fit_predict(model, arguments(len(train)), train, evaluation,
                                   transformers.DataCollatorWithPadding(tokenizer))
    probabilities, gold = 1 / (1 + np.exp(-logits)), gold > 0.5

    def f1s(threshold: float) -> tuple[float, float]:
        predicted = probabilities >= threshold
        right, guessed, actual = (predicted & gold).sum(0), predicted.sum(0), gold.sum(0)
        per_label = np.divide(2 * right, guessed + actual, out=np.zeros(len(names)),
                              where=guessed + actual > 0)
        return float(per_label.mean()), float(2 * right.sum() / (guessed.sum() + actual.sum()))

    macro_f1, micro_f1 = f1s(0.5)
    sweep = {threshold: f1s(threshold) for threshold in np.round(np.arange(0.05, 0.951, 0.05), 2)}
    best = max(sweep, key=lambda threshold: sweep[threshold][0])
    epochs = arguments(len(train)).num_train_epochs
    return {"examples_per_second": len(train) * epochs / seconds, "train_seconds": seconds,
            "train_examples": len(train), "metric": macro_f1, "micro_f1": micro_f1,
            "best_threshold": float(best), "best_macro_f1": sweep[best][0]}


def _sentence_pairs(path: Path, limit: int) -> tuple[list[str], list[str], list[float]]:
    """``sentence1``, ``sentence2`` and ``score`` of a GLUE STS-B TSV (header row; no quoting)."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))[:limit or None]
    return [row["sentence1"] for row in rows], [row["sentence2"] for row in rows], [float(row["score"])
                                                                                     for row in rows]


def regression(checkpoint: str, train_file: Path, eval_file: Path, max_train: int, max_length: int,
               arguments) -> dict:
    """One-output ``AutoModelForSequenceClassification`` (MSE), as ``run_glue.py`` trains STS-B.

    Returns Pearson (``metric``) and Spearman correlation on the evaluation file.
    """
    import transformers
    from scipy import stats

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)

    def encode(path, limit):
        first, second, scores = _sentence_pairs(path, limit)
        encoded = tokenizer(first, second, truncation=True, max_length=max_length)
        return _Rows([{**{key: values[i] for key, values in encoded.items()}, "labels": scores[i]}
                      for i in range(len(scores))]), np.array(scores)

    (train, _), (evaluation, gold) = encode(train_file, max_train), encode(eval_file, 0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=1, problem_type="regression")
    predictions, seconds = _fit_predict(model, arguments(len(train)), train, evaluation,
                                        transformers.DataCollatorWithPadding(tokenizer))
    predicted = predictions.reshape(-1).astype(np.float64)
    epochs = arguments(len(train)).num_train_epochs
    return {"examples_per_second": len(train) * epochs / seconds, "train_seconds": seconds,
            "train_examples": len(train), "metric": float(np.corrcoef(predicted, gold)[0, 1]),
            "spearman": float(stats.spearmanr(predicted, gold).statistic)}


def masked_lm(checkpoint: str, train_file: Path, eval_file: Path, max_train: int, max_length: int,
              arguments) -> dict:
    """``run_mlm.py``'s recipe on text files: one document per line, 15% of tokens masked.

    Lines are tokenized with special tokens, concatenated and cut into blocks of ``max_length``
    (the remainder dropped), masked by ``DataCollatorForLanguageModeling``. The evaluation blocks
    are masked after ``torch.manual_seed(0)`` at each evaluation, so the scores before and after
    training are over the same masks. Returns perplexity (``metric``: ``exp`` of the evaluation
    loss) and masked-token ``accuracy``, each also ``*_before`` training.
    """
    import math

    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)

    def blocks(path: Path, limit: int) -> _Rows:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        lines = lines[:limit or None]
        encoded = tokenizer(lines, return_special_tokens_mask=True)
        stream = {key: [token for row in values for token in row] for key, values in encoded.items()}
        size = len(stream["input_ids"]) // max_length * max_length
        return _Rows([{key: values[start:start + max_length] for key, values in stream.items()}
                      for start in range(0, size, max_length)])

    def accuracy(prediction) -> dict:
        labels, predicted = prediction.label_ids.reshape(-1), prediction.predictions.reshape(-1)
        scored = labels != -100
        return {"accuracy": float(np.mean(predicted[scored] == labels[scored]))}

    train, evaluation = blocks(train_file, max_train), blocks(eval_file, 0)
    model = transformers.AutoModelForMaskedLM.from_pretrained(checkpoint)
    trainer = transformers.Trainer(
        model=model, args=arguments(len(train)), train_dataset=train,
        data_collator=transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15),
        compute_metrics=accuracy, preprocess_logits_for_metrics=lambda logits, _: logits.argmax(dim=-1),
    )

    def scores() -> tuple[float, float]:
        torch.manual_seed(0)
        result = trainer.evaluate(evaluation)
        return math.exp(result["eval_loss"]), result["eval_accuracy"]

    perplexity_before, accuracy_before = scores()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    perplexity, accuracy_after = scores()
    epochs = arguments(len(train)).num_train_epochs
    return {"examples_per_second": len(train) * epochs / seconds, "train_seconds": seconds,
            "train_examples": len(train), "metric": perplexity, "accuracy": accuracy_after,
            "metric_before": perplexity_before, "accuracy_before": accuracy_before}
