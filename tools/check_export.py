r"""Checks that an exported SavedModel, fed raw text, reproduces a run's ``eval_results.json``.

Imports only TensorFlow (no tfft, TensorFlow Text, ``tokenizers`` or ``transformers``):
reads the validation data named in the export's ``assets/params.yaml`` (its first
``max_examples`` examples, as training reads them), sends its raw text to
``serving_default`` (which tokenizes in the graph) and recomputes the run's metrics from
what the signature returns, by ``task.type``:

- ``sentence_classification``: accuracy of ``label``; ``sentence_regression``: Pearson of
  ``score``. Sends the ``task.text_fields`` columns of a TSV/CSV file as ``text`` (and
  ``text_pair``).
- ``token_classification``: entity-level micro F1, precision, recall and word accuracy of
  ``tags`` (one per word of ``words``, as training scores each word's first sub-word).
  Sends every sentence of a CoNLL file (or JSONL/JSON with the word and tag lists in
  ``task.text_fields[0]`` and ``task.label_field``) as ``text``, its words joined by spaces.
- ``question_answering``: the official SQuAD exact match and F1 (0-100) of ``answer``.
  Sends ``question`` and ``context`` of a SQuAD JSON file (or JSONL/JSON records with
  ``id``, ``question``, ``context``, ``answers``); scores every question training scores.

The entity and SQuAD scores are tfft's own (``tfft/tasks/entities.py``,
``tfft/tasks/squad_metrics.py``, standard library only), loaded from their files by path
with ``importlib.util.spec_from_file_location``, so the ``tfft`` package (and TensorFlow
Text, ``tokenizers``, ``transformers``) is never imported; the report says which of them
are. Copy the export anywhere first: it needs nothing of the training run but the
``eval_results.json`` it is compared with. Data that ``params.yaml`` names as ``tfds:``
or that lives elsewhere here is given with ``--input_path`` (and ``--format``).

Examples:
    python tools/check_export.py --export_dir=runs/sst2_minilm/export/1 \
        --eval_results=runs/sst2_minilm/eval_results.json
    python tools/check_export.py --export_dir=runs/conll2003/export/1 \
        --eval_results=runs/conll2003/eval_results.json \
        --input_path=../shared/data/conll2003/test.txt --format=conll
    python tools/check_export.py --export_dir=runs/squad_v1/export/1 \
        --eval_results=runs/squad_v1/eval_results.json
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import yaml
from absl import app, flags

flags.DEFINE_string("export_dir", None, "The SavedModel to check.")
flags.DEFINE_string("eval_results", None, "The run's eval_results.json.")
flags.DEFINE_string("input_path", "", "Validation data to read instead of params.yaml's "
                    "task.validation_data.input_path (e.g. a local copy of a tfds: split).")
flags.DEFINE_string("format", "", "Format of the data (tsv, csv, conll, jsonl, json); default: "
                    "params.yaml's, or from the suffix with --input_path.")
flags.DEFINE_integer("batch_size", 64, "Examples per serving call.")
flags.DEFINE_float("tolerance", None, "Largest allowed difference of a metric "
                   "(default 1e-6; 0.1 for question answering, whose scores are 0-100).")
flags.mark_flags_as_required(["export_dir", "eval_results"])
FLAGS = flags.FLAGS

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("tfft", "tokenizers", "transformers", "tensorflow_text")
SUFFIXES = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".conll": "conll"}
#: What a ``.txt`` file holds for a task that reads these formats (the tasks' ``format_suffixes``:
#: CoNLL-2003 ships CoNLL ``.txt`` files, RACE JSON ones).
TXT_FORMATS = ("conll", "json")
GZIP_SUFFIX, GZIP_MAGIC = ".gz", b"\x1f\x8b"
CONLL_DOCUMENT_START = "-DOCSTART-"


class CheckError(Exception):
    """A one-line reason the check cannot run."""


def load_tfft_module(path: str):
    """A standard-library-only module of tfft (e.g. ``tasks/squad_metrics.py``), without the package."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / "tfft" / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_tensorflow():
    """TensorFlow, imported as tfft's commands import it: without its start-up notices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_tfft_module("cli/quiet.py").quiet_start()
    import tensorflow

    return tensorflow


tf = import_tensorflow()


# --- reading, as tfft/data/sources.py reads -------------------------------------------------


def data_format(path: str, declared: str, formats: tuple[str, ...] = ()) -> str:
    """The declared format, or the one the suffix names (as ``sources.infer_format``).

    A ``.gz`` suffix is looked past; ``.txt`` is the first of :data:`TXT_FORMATS` in ``formats``.
    """
    if declared and declared != "auto":
        return declared
    if path.startswith("tfds:"):
        return "tfds"
    name = path.lower().removesuffix(GZIP_SUFFIX)
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    if name.endswith(".txt") and (txt := [fmt for fmt in TXT_FORMATS if fmt in formats]):
        return txt[0]
    raise CheckError(f"cannot tell the format of '{path}' from its name; pass --format=conll (or tsv, csv, "
                     "jsonl, json)")


def files(path: str) -> list[str]:
    """The file, or the files a glob pattern matches in name order."""
    if not any(char in path for char in "*?["):
        if not tf.io.gfile.exists(path):
            raise CheckError(f"validation data '{path}' does not exist; pass --input_path=PATH to a copy")
        return [path]
    matches = sorted(tf.io.gfile.glob(path))
    if not matches:
        raise CheckError(f"no file matches '{path}'; pass --input_path=PATH to a copy of the data")
    return matches


def read_text(path: str) -> str:
    """A UTF-8 file's text (gunzipped where it is gzip), without a byte order mark."""
    with tf.io.gfile.GFile(path, "rb") as file:
        data = file.read()
    data = gzip.decompress(data) if data.startswith(GZIP_MAGIC) else data
    return data.decode("utf-8").lstrip("\ufeff")


def delimited_records(path: str, fmt: str, columns: list) -> Iterator[dict]:
    """TSV (no quoting) or CSV rows, with a header unless ``columns`` names the columns."""
    delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
    header = [str(name) for name in columns]
    for row in csv.reader(read_text(path).splitlines(), delimiter=delimiter, quoting=quoting):
        if not header:
            header = row
        elif any(cell.strip() for cell in row):
            yield dict(zip(header, row, strict=True))


def jsonl_records(text: str) -> Iterator[dict]:
    yield from (json.loads(line) for line in text.splitlines() if line.strip())


def json_records(path: str) -> Iterator[dict]:
    """A SQuAD document (one record per question), a list of objects, one object, or JSON Lines."""
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            raise
        yield from jsonl_records(text)
        return
    if isinstance(document, dict) and "data" in document:
        for article in document["data"]:
            for paragraph in article["paragraphs"]:
                for question in paragraph["qas"]:
                    yield {"title": article.get("title", ""), "context": paragraph.get("context"), **question}
    else:
        yield from document if isinstance(document, list) else [document]


def conll_records(path: str) -> Iterator[dict]:
    """One record per sentence: ``tokens`` (first column) and ``columns`` (every column)."""
    rows = []
    for line in read_text(path).splitlines():
        cells = line.split()
        if cells and cells[0] == CONLL_DOCUMENT_START:
            cells = []
        if cells:
            rows.append(cells)
        elif rows:
            yield {"tokens": [row[0] for row in rows], "columns": [list(c) for c in zip(*rows, strict=True)]}
            rows = []
    if rows:
        yield {"tokens": [row[0] for row in rows], "columns": [list(c) for c in zip(*rows, strict=True)]}


def read_records(data: dict, formats: tuple[str, ...]) -> list[dict]:
    """The first ``max_examples`` records (0: all) of ``data`` (a ``task.*_data`` section)."""
    path = data["input_path"]
    fmt = data_format(path, data.get("format", "auto"), formats)
    if fmt not in formats:
        raise CheckError(f"check_export reads {', '.join(formats)} data for this task, not {fmt} "
                         f"('{path}'); pass --input_path=PATH (and --format) to a copy in one of those")
    readers: dict[str, Callable[[str], Iterator[dict]]] = {
        "tsv": lambda file: delimited_records(file, "tsv", data.get("columns") or []),
        "csv": lambda file: delimited_records(file, "csv", data.get("columns") or []),
        "jsonl": lambda file: jsonl_records(read_text(file)),
        "json": json_records, "conll": conll_records,
    }
    rows = itertools.chain.from_iterable(readers[fmt](file) for file in files(path))
    records = list(itertools.islice(rows, data.get("max_examples") or None))
    if not records:
        raise CheckError(f"validation data '{path}' holds no examples")
    return records


# --- serving ----------------------------------------------------------------------------------


def serve(export_dir: Path, inputs: dict[str, list[str]]) -> Iterator[dict[str, np.ndarray]]:
    """``serving_default``'s outputs on the string ``inputs``, one dict per batch."""
    signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    expected = sorted(signature.structured_input_signature[1])
    if expected != sorted(inputs):
        raise CheckError(f"serving_default takes {expected}, not {sorted(inputs)}; export the run with "
                         "this tfft version or check task.type in assets/params.yaml")
    count = len(next(iter(inputs.values())))
    for start in range(0, count, FLAGS.batch_size):
        batch = signature(**{name: tf.constant(values[start:start + FLAGS.batch_size])
                             for name, values in inputs.items()})
        yield {name: value.numpy() for name, value in batch.items()}


def concatenated(batches: Iterator[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    outputs: dict[str, list] = {}
    for batch in batches:
        for name, value in batch.items():
            outputs.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in outputs.items()}


# --- metrics by task --------------------------------------------------------------------------


def sentence_scores(export_dir: Path, task: dict, data: dict) -> tuple[dict, int]:
    """Accuracy of ``label`` (classification) or Pearson of ``score`` (regression)."""
    rows = read_records(data, ("tsv", "csv"))
    texts = [[row[field] for row in rows] for field in task["text_fields"]]
    outputs = concatenated(serve(export_dir, dict(zip(("text", "text_pair"), texts, strict=False))))
    gold = [row[task["label_field"]].strip() for row in rows]
    if "label" in outputs:
        predicted = [label.decode() for label in outputs["label"]]
        return {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))}, len(rows)
    return {"pearson": float(np.corrcoef(outputs["score"], np.array(gold, float))[0, 1])}, len(rows)


def sentence_tags(record: dict, task: dict) -> tuple[list[str], list[str]]:
    """A sentence's words and gold tags, as ``TokenClassification.read_examples`` reads them."""
    if "columns" in record:
        words, tags = record["tokens"], record["columns"][task.get("tag_column", -1)]
    else:
        words, tags = record.get(task["text_fields"][0]), record.get(task.get("label_field", "label"))
    names = [str(name) for name in task.get("label_list", [])]
    tags = [names[tag] if isinstance(tag, int) and not isinstance(tag, bool) else str(tag) for tag in tags]
    return [str(word) for word in words], tags


def tagging_scores(export_dir: Path, task: dict, data: dict) -> tuple[dict, int]:
    """Entity-level micro F1 (conlleval rules, as training) of the served word tags."""
    entities = load_tfft_module("tasks/entities.py")
    sentences = [sentence_tags(record, task) for record in read_records(data, ("conll", "jsonl", "json"))]
    predicted = []
    for batch in serve(export_dir, {"text": [" ".join(words) for words, _ in sentences]}):
        for words, tags in zip(batch["words"].tolist(), batch["tags"].tolist(), strict=True):
            count = sum(1 for word in words if word)
            predicted.append(([word.decode() for word in words[:count]],
                              [tag.decode() for tag in tags[:count]]))
    for index, ((words, _), (served, _)) in enumerate(zip(sentences, predicted, strict=True)):
        if words != served:
            raise CheckError(f"sentence {index + 1}: serving_default split it into {len(served)} words, "
                             f"the data has {len(words)}; words must not contain whitespace")
    scores = entities.entity_scores([tags for _, tags in sentences], [tags for _, tags in predicted])
    return {name: scores[name] for name in ("f1", "precision", "recall", "accuracy")}, len(sentences)


def gold_answers(record: dict) -> list[str] | None:
    """The answers training scores against (those matching ``answer_start``); None: skipped."""
    raw = record.get("answers", [])
    if isinstance(raw, dict):
        raw = [{"text": text, "answer_start": start}
               for text, start in zip(raw["text"], raw.get("answer_start") or [], strict=False)]
    context = record["context"]
    answers = [text for text, start in ((answer["text"], answer["answer_start"]) for answer in raw)
               if context[start:start + len(text)] == text]
    if record.get("is_impossible") or not raw:
        return []
    return answers or None


def answer_scores(export_dir: Path, task: dict, data: dict) -> tuple[dict, int]:
    """The official SQuAD exact match and F1 (0-100) of the served ``answer``s."""
    squad_metrics = load_tfft_module("tasks/squad_metrics.py")
    questions = [(record, gold) for record in read_records(data, ("json", "jsonl"))
                 if (gold := gold_answers(record)) is not None]
    outputs = concatenated(serve(export_dir, {"question": [record["question"] for record, _ in questions],
                                              "context": [record["context"] for record, _ in questions]}))
    predictions = {str(record["id"]): answer.decode()
                   for (record, _), answer in zip(questions, outputs["answer"], strict=True)}
    scores = squad_metrics.squad_scores(predictions, {str(record["id"]): gold for record, gold in questions},
                                        bool(task.get("version_2_with_negative", False)))
    return {"f1": scores["f1"], "exact_match": scores["exact_match"]}, len(questions)


#: task.type -> the metrics it recomputes (main metric first), and its default tolerance.
SCORERS = {
    "sentence_classification": (sentence_scores, 1e-6),
    "sentence_regression": (sentence_scores, 1e-6),
    "token_classification": (tagging_scores, 1e-6),
    "question_answering": (answer_scores, 0.1),
}


def check(export_dir: Path, eval_results: Path) -> dict:
    """The report: recomputed and recorded metrics, example count, which libraries got imported.

    Raises:
        CheckError: for a task type, data format or signature this tool does not handle.
    """
    task = yaml.safe_load((export_dir / "assets" / "params.yaml").read_text())["task"]
    kind = task.get("type", "sentence_classification")
    if kind not in SCORERS:
        raise CheckError(f"check_export handles task.type {', '.join(SCORERS)}, not '{kind}'")
    data = dict(task["validation_data"])
    if FLAGS.input_path:
        data.update(input_path=FLAGS.input_path, format="auto")
    if FLAGS.format:
        data["format"] = FLAGS.format
    scorer, tolerance = SCORERS[kind]
    values, examples = scorer(export_dir, task, data)
    expected = json.loads(eval_results.read_text())
    missing = [name for name in values if name not in expected]
    if missing:
        raise CheckError(f"{eval_results} has no {', '.join(missing)}; is it this run's eval_results.json?")
    metric = next(iter(values))
    return {"task": kind, "metric": metric, "saved_model": values[metric], "eval_results": expected[metric],
            "compared": {name: [value, expected[name]] for name, value in values.items()},
            "tolerance": tolerance if FLAGS.tolerance is None else FLAGS.tolerance, "examples": examples,
            "imported": {name: name in sys.modules for name in LIBRARIES}}


def main(argv):
    """Recomputes the metrics with the SavedModel and compares them with eval_results.json."""
    del argv
    try:
        report = check(Path(FLAGS.export_dir), Path(FLAGS.eval_results))
    except CheckError as error:
        sys.exit(f"check_export: {error}")
    print(json.dumps(report))
    different = [f"{name} {value} differs from eval_results.json {recorded}"
                 for name, (value, recorded) in report["compared"].items()
                 if not abs(value - recorded) <= report["tolerance"]]  # NaN differs too.
    if different:
        sys.exit(f"check_export: {'; '.join(different)} (tolerance {report['tolerance']})")


if __name__ == "__main__":
    app.run(main)
