"""The Hugging Face PyTorch question-answering recipe, as a peer for ``tools/benchmark.py``.

Follows ``transformers/examples/pytorch/question-answering`` (``run_qa.py`` and
``utils_qa.py``): question + context tokenized with ``truncation="only_second"``,
overflowing windows with ``stride`` tokens of overlap, answer positions from the offset
mapping (windows without the answer point at the CLS token),
``AutoModelForQuestionAnswering`` trained with ``Trainer`` and dynamic padding, and
n-best start/end post-processing merged per example. Scores are the official SQuAD
v1.1 script's exact match and F1, written out here (no tfft import).
"""

from __future__ import annotations

import collections
import json
import re
import string
import time
from pathlib import Path

import numpy as np


def read_squad(path: Path, limit: int = 0) -> list[dict]:
    """Questions of a SQuAD file as ``{id, question, context, answers: {text, answer_start}}``."""
    rows = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append({
                    "id": qa["id"], "question": qa["question"], "context": paragraph["context"],
                    "answers": {"text": [a["text"] for a in qa["answers"]],
                                "answer_start": [a["answer_start"] for a in qa["answers"]]},
                })
    return rows[:limit] if limit else rows


def tokenize(tokenizer, examples: list[dict], max_length: int, stride: int):
    """``run_qa.py``'s tokenization: overflowing windows with offsets."""
    return tokenizer(
        [e["question"].lstrip() for e in examples], [e["context"] for e in examples],
        truncation="only_second", max_length=max_length, stride=stride,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
    )


def prepare_train_features(tokenizer, examples: list[dict], max_length: int, stride: int) -> list[dict]:
    """``prepare_train_features`` of ``run_qa.py``: windows with start/end positions."""
    encoded = tokenize(tokenizer, examples, max_length, stride)
    features = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        input_ids = encoded["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
        sequence_ids = encoded.sequence_ids(i)
        answers = examples[encoded["overflow_to_sample_mapping"][i]]["answers"]
        start_position = end_position = cls_index
        if answers["answer_start"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start = 0
            while sequence_ids[token_start] != 1:
                token_start += 1
            token_end = len(input_ids) - 1
            while sequence_ids[token_end] != 1:
                token_end -= 1
            if offsets[token_start][0] <= start_char and offsets[token_end][1] >= end_char:
                while token_start < len(offsets) and offsets[token_start][0] <= start_char:
                    token_start += 1
                start_position = token_start - 1
                while offsets[token_end][1] >= end_char:
                    token_end -= 1
                end_position = token_end + 1
        feature = {key: encoded[key][i] for key in ("input_ids", "token_type_ids", "attention_mask")
                   if key in encoded}
        features.append({**feature, "start_positions": start_position, "end_positions": end_position})
    return features


def prepare_validation_features(tokenizer, examples: list[dict], max_length: int, stride: int):
    """``prepare_validation_features``: model inputs, and per window its example and context offsets."""
    encoded = tokenize(tokenizer, examples, max_length, stride)
    inputs, windows = [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        inputs.append({key: encoded[key][i] for key in ("input_ids", "token_type_ids", "attention_mask")
                       if key in encoded})
        windows.append((encoded["overflow_to_sample_mapping"][i],
                        [o if sequence_ids[k] == 1 else None for k, o in enumerate(offsets)]))
    return inputs, windows


def postprocess_qa_predictions(examples, windows, start_logits, end_logits, n_best_size=20,
                               max_answer_length=30) -> dict[str, str]:
    """``utils_qa.postprocess_qa_predictions`` (SQuAD v1.1): best span per example."""
    windows_of = collections.defaultdict(list)
    for index, (example_index, _) in enumerate(windows):
        windows_of[example_index].append(index)
    answers = {}
    for example_index, example in enumerate(examples):
        candidates = []
        for index in windows_of[example_index]:
            offsets = windows[index][1]
            starts = np.argsort(start_logits[index])[-1:-n_best_size - 1:-1].tolist()
            ends = np.argsort(end_logits[index])[-1:-n_best_size - 1:-1].tolist()
            for start in starts:
                for end in ends:
                    if (start >= len(offsets) or end >= len(offsets) or offsets[start] is None
                            or offsets[end] is None):
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    candidates.append((start_logits[index][start] + end_logits[index][end],
                                       offsets[start][0], offsets[end][1]))
        if candidates:
            _, first, last = max(candidates, key=lambda candidate: candidate[0])
            answers[example["id"]] = example["context"][first:last]
        else:
            answers[example["id"]] = "empty"
    return answers


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1_score(prediction: str, ground_truth: str) -> float:
    """The official SQuAD v1.1 token F1."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    num_same = sum((collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)).values())
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(prediction_tokens), num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1_evaluate(examples: list[dict], predictions: dict[str, str]) -> dict[str, float]:
    """The official SQuAD v1.1 ``evaluate``: exact match and F1 in percent."""
    exact = f1 = 0.0
    for example in examples:
        truths, prediction = example["answers"]["text"], predictions.get(example["id"], "")
        exact += max(float(normalize_answer(prediction) == normalize_answer(t)) for t in truths)
        f1 += max(f1_score(prediction, t) for t in truths)
    return {"exact_match": 100.0 * exact / len(examples), "f1": 100.0 * f1 / len(examples)}


def run(checkpoint: str, train_file: Path, eval_file: Path, max_train_examples: int,
        max_length: int, stride: int, training_arguments) -> dict:
    """Fine-tunes and evaluates; returns F1 (as ``metric``, 0-100), exact match and throughput.

    Args:
        checkpoint: Hugging Face checkpoint folder.
        train_file: SQuAD JSON to train on.
        eval_file: SQuAD JSON to evaluate on.
        max_train_examples: First N training questions (0 = all).
        max_length: Tokens per window.
        stride: Tokens of overlap between windows (Hugging Face's meaning).
        training_arguments: Called with the number of training windows; returns
            ``transformers.TrainingArguments``.
    """
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(checkpoint)
    train_examples = read_squad(train_file, max_train_examples)
    eval_examples = read_squad(eval_file)
    train = prepare_train_features(tokenizer, train_examples, max_length, stride)
    inputs, windows = prepare_validation_features(tokenizer, eval_examples, max_length, stride)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, index):
            return self.rows[index]

    arguments = training_arguments(len(train))
    trainer = transformers.Trainer(
        model=model, args=arguments, train_dataset=Rows(train),
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # Trainer's evaluation sampler follows train_sampling_strategy: under "group_by_length"
    # it reorders the windows, and the logits would no longer line up with ``windows``.
    trainer.args.train_sampling_strategy = "random"
    start_logits, end_logits = trainer.predict(Rows(inputs)).predictions
    if len(start_logits) != len(windows):
        raise RuntimeError(f"{len(start_logits)} predictions for {len(windows)} windows")
    predictions = postprocess_qa_predictions(eval_examples, windows, start_logits, end_logits)
    scores = squad_v1_evaluate(eval_examples, predictions)
    return {"examples_per_second": len(train_examples) * arguments.num_train_epochs / seconds,
            "train_seconds": seconds, "metric": scores["f1"], "exact_match": scores["exact_match"],
            "train_windows": len(train)}
