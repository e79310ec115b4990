"""``tools/benchmark.py --mode=inference`` end to end on a tiny BERT (``pytest -m slow``)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from conftest import REPO, write_sentiment_tsv

pytestmark = pytest.mark.slow


def write_conll(path, count: int, seed: int) -> None:
    """Sentences of known words, some split by the tokenizer ("dog." and "zqx"), with tags."""
    rng = random.Random(seed)
    words = [("man", "B-PER"), ("woman", "I-PER"), ("dog.", "B-LOC"), ("zqx", "B-ORG"), ("the", "O"),
             ("plays", "O"), ("guitar", "B-MISC"), ("on", "O")]
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(count):
        lines += [f"{word} X X {tag}" for word, tag in rng.choices(words, k=rng.randint(2, 9))] + [""]
    path.write_text("\n".join(lines))


@pytest.mark.parametrize("task", ["sst2", "conll2003"])
def test_both_sides_serve_the_same_model_and_the_report_compares_them(task, tiny_bert, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if task == "sst2":
        write_sentiment_tsv(data / "train.tsv", 64, seed=1)
        write_sentiment_tsv(data / "dev.tsv", 40, seed=2)
    else:
        write_conll(data / "train.txt", 64, seed=1)
        write_conll(data / "test.txt", 40, seed=2)
    output = tmp_path / "bench"
    process = subprocess.run(
        [sys.executable, "tools/benchmark.py", "--mode=inference", f"--task={task}",
         f"--checkpoint={tiny_bert}", f"--data_dir={data}", "--max_seq_length=32", "--max_train_examples=0",
         "--inference_batch_size=8", "--latency_examples=5", f"--output_dir={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads((output / "inference_results.json").read_text())
    assert report["tfft"]["sentences"] == report["hf"]["sentences"] == 40
    assert report["tfft"]["latency_sentences"] == 5
    assert not any(report["tfft"]["imported"][name] for name in ("tfft", "torch", "transformers"))
    assert not report["hf"]["imported"]["tensorflow"]
    agreement = report["agreement"]
    assert agreement["labels_equal" if task == "sst2" else "word_tags_equal"] == 1.0
    assert "| workload | batch | tfft sent/s | HF sent/s | ratio |" in process.stdout
    assert report["table"][2].split("|")[2].strip() == "8"
