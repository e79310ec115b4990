"""``tools/benchmark.py`` training mode over seeds, tfft beside the Hugging Face recipe (``-m slow``)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, WORDS

pytestmark = pytest.mark.slow


def write_stsb(path, count: int, seed: int) -> None:
    """A GLUE STS-B TSV (its header and columns) whose score grows with the words two sentences share."""
    rng = random.Random(seed)
    lines = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for index in range(count):
        first = rng.sample(WORDS, 6)
        shared = rng.randint(0, 5)
        second = first[:shared] + rng.sample([word for word in WORDS if word not in first], 6 - shared)
        lines.append(f"{index}\tmain\tf\t2012\t{index:04d}\tnone\tnone\t{' '.join(first)}\t{' '.join(second)}"
                     f"\t{shared:.3f}")
    path.write_text("\n".join(lines) + "\n")


def test_stsb_over_seeds_reports_mean_and_sd_of_both_sides(tiny_bert, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_stsb(data / "train.tsv", 96, seed=1)
    write_stsb(data / "dev.tsv", 48, seed=2)
    output = tmp_path / "bench"
    process = subprocess.run(
        [sys.executable, "tools/benchmark.py", "--task=stsb", f"--checkpoint={tiny_bert}",
         f"--data_dir={data}", "--max_seq_length=32", "--max_train_examples=0", "--batch_size=16",
         "--epochs=2", "--seeds=1,2", "--learning_rate=1e-3", f"--output_dir={output}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    results = json.loads((output / "results.json").read_text())
    for side in ("tfft", "hf"):
        pearsons = [run["metric"] for run in results["runs"][side]]
        assert len(pearsons) == 2 and pearsons[0] != pearsons[1]  # the seed reached the run
        assert results["summary"][side]["metric"] == pytest.approx(np.mean(pearsons))
        assert results["summary"][side]["metric_sd"] == pytest.approx(statistics.stdev(pearsons))
        assert f"{side} pearson over seeds 1, 2: " in process.stdout
        assert all("spearman" in run for run in results["runs"][side])
    tfft_run = json.loads((output / "tfft-seed1" / "eval_results.json").read_text())
    assert results["runs"]["tfft"][0]["metric"] == tfft_run["pearson"]
