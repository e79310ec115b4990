r"""Inference mode of ``tools/benchmark.py``: tfft's raw-text SavedModel against HF ``pipeline``.

One tfft run of ``--task`` (``--model_dir``, or one trained here as the training mode does,
on ``--max_train_examples`` rows) is exported twice with ``tfft-export``: as a SavedModel
(``--format=saved_model``) and as a Hugging Face folder (``--format=hf``). Each side then
runs in its own subprocess, one after the other, on the evaluation sentences as raw strings
(CoNLL: the words joined by spaces):

- tfft: TensorFlow alone loads the SavedModel and calls ``serving_default(text=...)``,
  which tokenizes in the graph and returns the ``label`` (SST-2) or each word's tag (CoNLL);
- HF: ``transformers.pipeline`` on the PyTorch export (CPU, ``device=-1``):
  ``text-classification`` for SST-2, ``token-classification`` with
  ``aggregation_strategy="none"`` for CoNLL. Its per-token output is turned into word tags
  after the clock stops: each word takes the tag of the token starting at the word's first
  character (its first sub-word), as tfft and the training recipes do. (``"first"`` would
  group by the tokenizer's pre-tokenized pieces, which split words such as "U.S." or "3.5",
  and merge them into entity groups that lose the per-word tags.)

Each side is warmed up first (one call at each batch size, reported, not timed). Batch
throughput is sentences / wall time over the whole set in calls of ``--inference_batch_size``
(HF: one pipeline call over the list with that ``batch_size``; tfft: one call per batch),
tokenization and post-processing included. Batch-1 latency is the p50/p95 of single-sentence
calls over the first ``--latency_examples`` sentences. Threads are left at each library's
defaults and reported. Agreement (same SST-2 labels, same CoNLL word tags) shows both sides
ran the same model; both are also scored against the gold labels.

Example:
    python tools/benchmark.py --mode=inference --task=sst2 --max_train_examples=4000 \
        --output_dir=/tmp/bench_infer_sst2
    python tools/benchmark.py --mode=inference --task=conll2003 --model_dir=/tmp/bench_ner/tfft-seed42 \
        --output_dir=/tmp/bench_infer_ner
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import benchmark
from benchmark import FLAGS

#: The Hugging Face pipeline and its arguments, by task.
PIPELINES = {
    "sst2": ("text-classification", {}),
    "conll2003": ("token-classification", {"aggregation_strategy": "none"}),
}
#: The table's name of each workload.
WORKLOADS = {"sst2": "SST-2 dev", "conll2003": "CoNLL-2003 test"}
#: The ``tfft-export --format`` each side serves, which is also its folder under --output_dir.
EXPORTS = {"tfft": "saved_model", "hf": "hf"}


def sentences() -> tuple[list[str], list]:
    """The evaluation sentences as raw strings (CoNLL: words joined by spaces) and their gold labels."""
    path = benchmark.task_files()[1]
    if FLAGS.task == "sst2":
        texts, labels = benchmark.read_sst2(path, FLAGS.max_eval_examples)
        return texts, [str(label) for label in labels]
    words, tags = benchmark.read_conll(path, FLAGS.max_eval_examples)
    return [" ".join(row) for row in words], tags


def measure(predict_batches, predict_one, texts: list[str]) -> tuple[list, dict]:
    """Times ``predict_batches(texts)`` (the whole set) and ``predict_one(text)`` per sentence.

    Returns:
        (the raw outputs of the whole set, the timings).
    """
    import numpy as np

    start = time.perf_counter()
    predict_batches(texts[:FLAGS.inference_batch_size])
    predict_one(texts[0])
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    outputs = predict_batches(texts)
    seconds = time.perf_counter() - start
    latencies = []
    for text in texts[:FLAGS.latency_examples]:
        start = time.perf_counter()
        predict_one(text)
        latencies.append(time.perf_counter() - start)
    milliseconds = 1000 * np.array(latencies)
    return outputs, {
        "warmup_seconds": warmup, "sentences": len(texts), "batch_seconds": seconds,
        "sentences_per_second": len(texts) / seconds, "latency_sentences": len(latencies),
        "batch1_sentences_per_second": len(latencies) / sum(latencies),
        **{f"p{q}_ms": float(np.percentile(milliseconds, q)) for q in (50, 95)},
    }


def serve_tfft() -> tuple[list, dict]:
    """Worker: the SavedModel's ``serving_default`` with TensorFlow alone."""
    import tensorflow as tf

    start = time.perf_counter()
    serve = tf.saved_model.load(str(Path(FLAGS.output_dir) / EXPORTS["tfft"])).signatures["serving_default"]
    loaded = time.perf_counter() - start
    key = "label" if FLAGS.task == "sst2" else "tags"
    size = FLAGS.inference_batch_size

    def predict_batches(texts):
        return [row for start in range(0, len(texts), size)
                for row in serve(text=tf.constant(texts[start:start + size]))[key].numpy()]

    texts, _ = sentences()
    outputs, timings = measure(predict_batches, lambda text: serve(text=tf.constant([text]))[key].numpy(),
                               texts)
    predictions = ([label.decode() for label in outputs] if key == "label"
                   else [[tag.decode() for tag in row if tag] for row in outputs])  # Tags pad with "".
    threads = {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    return predictions, {"load_seconds": loaded, **timings, "threads": threads}


def serve_hf() -> tuple[list, dict]:
    """Worker: ``transformers.pipeline`` on the Hugging Face export, PyTorch on the CPU."""
    import torch
    import transformers

    name, arguments = PIPELINES[FLAGS.task]
    start = time.perf_counter()
    pipe = transformers.pipeline(name, model=str(Path(FLAGS.output_dir) / EXPORTS["hf"]), device=-1,
                                 **arguments)
    loaded = time.perf_counter() - start
    texts, _ = sentences()
    outputs, timings = measure(lambda batch: pipe(batch, batch_size=FLAGS.inference_batch_size), pipe, texts)
    if FLAGS.task == "sst2":
        predictions = [output["label"] for output in outputs]
    else:
        predictions = [word_tags(text, tokens) for text, tokens in zip(texts, outputs, strict=True)]
    threads = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    return predictions, {"load_seconds": loaded, **timings, "threads": threads}


def word_tags(text: str, tokens: list[dict]) -> list[str]:
    """The tag of each space-separated word of ``text``: its first token's (``O`` if not listed)."""
    first = {}
    for token in tokens:
        first.setdefault(token["start"], token["entity"])
    tags, start = [], 0
    for word in text.split(" "):
        tags.append(first.get(start, "O"))
        start += len(word) + 1
    return tags


def worker() -> None:
    """Runs one side (``--worker``) and writes its timings and predictions to ``--worker_dir``."""
    predictions, result = {"tfft_serving": serve_tfft, "hf_pipeline": serve_hf}[FLAGS.worker]()
    libraries = ("tfft", "keras", "tensorflow", "torch", "transformers")
    result["imported"] = {name: name in sys.modules for name in libraries}
    folder = Path(FLAGS.worker_dir)
    (folder / "results.json").write_text(json.dumps(result, indent=2))
    (folder / "predictions.json").write_text(json.dumps(predictions))


def run_side(side: str, output: Path) -> tuple[list, dict]:
    """Runs this script as ``side``'s worker in a subprocess; returns its predictions and results."""
    folder = output / f"serve_{side}"
    command = [sys.executable, str(Path(benchmark.__file__).resolve()), "--mode=inference",
               f"--worker={'tfft_serving' if side == 'tfft' else 'hf_pipeline'}", f"--worker_dir={folder}",
               f"--output_dir={output}", f"--data_dir={benchmark.task_files()[1].parent}",
               *[f"--{name}={getattr(FLAGS, name)}" for name in (
                   "task", "max_eval_examples", "latency_examples", "inference_batch_size")]]
    status, wall, peak = benchmark.run_measured(command, folder.with_suffix(".log"))
    if status:
        raise SystemExit(f"{side} inference failed (exit {status}); see {folder.with_suffix('.log')}")
    result = json.loads((folder / "results.json").read_text())
    predictions = json.loads((folder / "predictions.json").read_text())
    return predictions, {**result, "peak_rss_mib": peak, "wall_seconds": wall}


def export(model_dir: Path, output: Path) -> None:
    """Exports ``model_dir`` with ``tfft-export`` in both formats, into --output_dir."""
    for format_ in EXPORTS.values():
        log = output / f"{format_}.log"
        command = [sys.executable, "-m", "tfft.cli.export", f"--format={format_}", f"--model_dir={model_dir}",
                   f"--export_dir={log.with_suffix('')}"]
        status, _, _ = benchmark.run_measured(command, log)
        if status:
            raise SystemExit(f"tfft-export --format={format_} failed (exit {status}); see {log}")


def agreement(gold: list, tfft: list, hf: list) -> dict:
    """How often the two sides predict the same, and each side's score against ``gold``."""
    if FLAGS.task == "sst2":
        same = sum(a == b for a, b in zip(tfft, hf, strict=True))
        return {"labels_equal": same / len(gold),
                **{f"{name}_accuracy": sum(p == g for p, g in zip(side, gold, strict=True)) / len(gold)
                   for name, side in (("tfft", tfft), ("hf", hf))}}
    from seqeval.metrics import f1_score

    pairs = [pair for a, b in zip(tfft, hf, strict=True) for pair in zip(a, b, strict=True)]
    return {"word_tags_equal": sum(a == b for a, b in pairs) / len(pairs),
            "sentences_equal": sum(a == b for a, b in zip(tfft, hf, strict=True)) / len(gold),
            "tfft_f1": float(f1_score(gold, tfft)), "hf_f1": float(f1_score(gold, hf))}


def table(results: dict) -> list[str]:
    """The markdown rows: batch throughput, then batch-1 throughput and latency."""
    tfft, hf = results["tfft"], results["hf"]
    name = WORKLOADS[FLAGS.task]
    rows = ["| workload | batch | tfft sent/s | HF sent/s | ratio | tfft p50/p95 ms | HF p50/p95 ms |",
            "|---|---|---|---|---|---|---|"]
    for batch, key, latency in ((FLAGS.inference_batch_size, "sentences_per_second", False),
                                (1, "batch1_sentences_per_second", True)):
        count = tfft["latency_sentences" if latency else "sentences"]
        ms = [f"{side['p50_ms']:.1f}/{side['p95_ms']:.1f}" if latency else "–" for side in (tfft, hf)]
        rows.append(f"| {name} ({count}) | {batch} | {tfft[key]:.1f} | {hf[key]:.1f} | "
                    f"{tfft[key] / hf[key]:.2f}x | {ms[0]} | {ms[1]} |")
    return rows


def main() -> None:
    """Trains or takes a run, exports it twice, serves each export, prints and writes the report."""
    if FLAGS.worker:
        worker()
        return
    if FLAGS.task not in PIPELINES:
        raise SystemExit(f"--mode=inference supports --task={' or '.join(PIPELINES)}, not {FLAGS.task}")
    checkpoint = FLAGS.checkpoint or benchmark.default_checkpoint()
    output = Path(FLAGS.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    host = benchmark.machine()
    print("machine: {cpu}, {cores} cores, AVX-512 {avx512f}, AVX-512 BF16 {avx512_bf16}, "
          "AMX {amx_bf16}".format(**host), flush=True)
    model_dir = Path(FLAGS.model_dir) if FLAGS.model_dir else output / f"tfft-seed{FLAGS.seeds[0]}"
    if not FLAGS.model_dir:
        trained = benchmark.run_tfft(checkpoint, FLAGS.seeds[0], model_dir,
                                     f"task.validation_data.max_examples={FLAGS.max_eval_examples}")
        print(f"trained {model_dir}: {benchmark.task_files()[3]} {trained['metric']:.4f}", flush=True)
    export(model_dir, output)
    predictions, results = {}, {}
    for side in EXPORTS:
        predictions[side], results[side] = run_side(side, output)
        print(f"{side}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in results[side].items()), flush=True)
    _, gold = sentences()
    results["agreement"] = agreement(gold, predictions["tfft"], predictions["hf"])
    results["ratio"] = {key: results["tfft"][key] / results["hf"][key]
                        for key in ("sentences_per_second", "batch1_sentences_per_second")}
    rows = table(results)
    print("\n" + "\n".join(rows))
    print("agreement: " + ", ".join(f"{k} {v:.4f}" for k, v in results["agreement"].items()))
    settings = {name: getattr(FLAGS, name) for name in (
        "task", "data_dir", "max_train_examples", "max_eval_examples", "latency_examples",
        "inference_batch_size", "seeds")}
    settings.update(checkpoint=checkpoint, model_dir=str(model_dir), hf_pipeline=PIPELINES[FLAGS.task])
    path = output / "inference_results.json"
    path.write_text(json.dumps({"settings": settings, "machine": host, **results, "table": rows}, indent=2))
    print(f"results: {path}")
