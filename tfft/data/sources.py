"""Reading raw records from TSV, CSV, JSON(L), CoNLL files and TensorFlow Datasets.

A *record* is one row as a dict of column name to value, with the place it came
from, so every later error can name the file and line. Files are read through
``tf.io.gfile``, so ``gs://`` paths work where TensorFlow's GCS support is installed;
an ``input_path`` with ``*``, ``?`` or ``[`` reads every matching file in name order.
Formats are registered by name (:func:`register_format`): the built-in ones here, and
any a task module adds for the layouts its datasets are published in.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from tfft.config import DataConfig
from tfft.errors import TfftError, located, reason

TFDS_PREFIX = "tfds:"
#: Written at the start of "UTF-8 with BOM" files (e.g. by spreadsheet programs).
BYTE_ORDER_MARK = "\ufeff"
#: Characters that make an input_path a glob pattern.
GLOB_CHARACTERS = "*?["
#: Read by the training pipeline itself (:mod:`tfft.data.tfrecords`), not as records.
TFRECORD_FORMAT = "tfrecord"
#: CoNLL files: one token per line, columns separated by whitespace, blank lines between
#: sentences, ``-DOCSTART-`` lines between documents.
CONLL_DOCUMENT_START = "-DOCSTART-"


@dataclasses.dataclass(frozen=True)
class Record:
    """One input row.

    Attributes:
        fields: Column name -> value (strings for text files; any JSON/TFDS value).
        source: File path or ``tfds:`` spec the row came from.
        line: 1-based line number (TSV/CSV/JSONL) or example number (TFDS, JSON documents).
        position: Where in a JSON document the record is, e.g.
            ``data[3].paragraphs[0].qas[2]`` (empty for line-based files).
    """

    fields: dict[str, Any]
    source: str
    line: int
    position: str = ""

    @property
    def where(self) -> str:
        """``source:line`` (or ``source:position``) for error messages."""
        return f"{self.source}:{self.position}" if self.position else located(self.source, self.line)


#: Reads one file (or TFDS spec) given the split's config (``format`` resolved).
Reader = Callable[[str, DataConfig], Iterator[Record]]
#: Format name -> reader, filled by :func:`register_format`.
_READERS: dict[str, Reader] = {}
#: File-name suffix -> format name.
_SUFFIXES: dict[str, str] = {}


def register_format(name: str, reader: Reader, suffixes: tuple[str, ...] = ()) -> None:
    """Makes ``reader`` the reader of ``format: name`` (and of files ending in ``suffixes``)."""
    _READERS[name] = reader
    _SUFFIXES.update({suffix.lower(): name for suffix in suffixes})


def format_names() -> list[str]:
    """Every value ``task.*_data.format`` accepts."""
    return ["auto", *sorted([*_READERS, TFRECORD_FORMAT])]


def infer_format(path: str, declared: str = "auto") -> str:
    """The input format named in the config, or inferred from the path.

    Raises:
        TfftError: for an unknown format name, or a path whose suffix names none.
    """
    if declared != "auto":
        if declared not in _READERS and declared != TFRECORD_FORMAT:
            raise TfftError(
                f"input '{path}' has unknown format '{declared}'; set task.*_data.format to one of "
                f"{', '.join(format_names())}"
            )
        return declared
    if path.startswith(TFDS_PREFIX):
        return "tfds"
    for suffix, fmt in _SUFFIXES.items():
        if path.lower().endswith(suffix):
            return fmt
    raise TfftError(
        f"cannot tell the format of '{path}' from its name; use a {'/'.join(sorted(_SUFFIXES))} suffix, "
        f"'tfds:NAME/SPLIT', or set the data's 'format' key to one of {', '.join(format_names())}"
    )


def read_data(data: DataConfig) -> list[Record]:
    """Reads the records of one split: ``data.input_path`` in ``data.format``.

    Up to ``data.max_examples`` records (0 = all). CoNLL files give one record per
    sentence with ``tokens`` (the first column) and ``columns`` (every column, one list
    per column). ``.json`` files may be a SQuAD document (``{"data": [{"paragraphs":
    [{"context", "qas"}]}]}``: one record per question with ``id``, ``title``,
    ``context``, ``question``, ``answers`` and, in SQuAD 2.0, ``is_impossible``), a JSON
    list of objects, a single object, or JSON Lines. TSV and CSV files have a header row
    unless ``data.columns`` names the columns.

    Raises:
        TfftError: for a missing file, a malformed row or an unknown format.
    """
    path = data.input_path
    fmt = infer_format(path, data.format)
    if fmt == TFRECORD_FORMAT:
        raise TfftError(f"'{path}' is TFRecord, which holds no text; use the file it was made from")
    data = dataclasses.replace(data, format=fmt)
    if fmt == "tfds":
        rows = _read_tfds(path, data)
    else:
        rows = itertools.chain.from_iterable(_READERS[fmt](file, data) for file in _files(path))
    records = list(itertools.islice(rows, data.max_examples or None))
    if not records:
        raise TfftError(f"input '{path}' holds no examples; check the file or the TFDS split")
    return records


def read_records(path: str, fmt: str = "auto", max_examples: int = 0, columns=()) -> list[Record]:
    """:func:`read_data` of a path, format, example limit and header-less column names."""
    data = DataConfig(input_path=path, max_examples=max_examples, format=fmt, columns=list(columns))
    return read_data(data)


def _files(path: str) -> list[str]:
    """The file ``path``, or the files matching the glob pattern ``path`` in name order."""
    if not any(char in path for char in GLOB_CHARACTERS):
        if not tf.io.gfile.exists(path):
            raise TfftError(f"input file '{path}' does not exist; check the input_path in the config")
        return [path]
    files = sorted(tf.io.gfile.glob(path))
    if not files:
        raise TfftError(f"no input file matches '{path}'; check the input_path in the config")
    return files


def _read_delimited(path: str, data: DataConfig) -> Iterator[Record]:
    """GLUE-style TSV (no quoting, as GLUE writes it) or quoted CSV, with a header row.

    Files without a header (e.g. GoEmotions, CoLA) get their column names from
    ``data.columns``; then every line is data.
    """
    fmt = data.format
    delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
    header = [str(name) for name in data.columns]
    what = "as task.*_data.columns names" if header else "as in the header"
    with tf.io.gfile.GFile(path, "r") as file:
        reader = csv.reader(file, delimiter=delimiter, quoting=quoting)
        for row in reader:
            line = reader.line_num
            if line == 1 and row:
                row[0] = row[0].lstrip(BYTE_ORDER_MARK)
            if not header:
                header = row
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise TfftError(
                    f"{located(path, line)}: expected {len(header)} {fmt.upper()} fields "
                    f"{what}, found {len(row)}; fix or remove the row"
                )
            yield Record(dict(zip(header, row, strict=True)), path, line)


def _read_jsonl(path: str, data: DataConfig) -> Iterator[Record]:
    """One JSON object per line."""
    with tf.io.gfile.GFile(path, "r") as file:
        for line, text in enumerate(file, start=1):
            text = text.lstrip(BYTE_ORDER_MARK) if line == 1 else text
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise TfftError(
                    f"{located(path, line)}: invalid JSON at column {error.colno} "
                    f"({error.msg}); fix the line"
                ) from None
            if not isinstance(value, dict):
                raise TfftError(f"{located(path, line)}: expected a JSON object; fix the line")
            yield Record(value, path, line)


def _read_json(path: str, data: DataConfig) -> Iterator[Record]:
    """A whole JSON document: SQuAD layout or a list of objects; JSON Lines otherwise."""
    with tf.io.gfile.GFile(path, "r") as file:
        text = file.read().lstrip(BYTE_ORDER_MARK)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # More than one value: JSON Lines.
            yield from _read_jsonl(path, data)
            return
        raise TfftError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON ({error.msg}, character {error.pos}); "
            "fix the file"
        ) from None
    if isinstance(document, dict) and "data" in document:
        yield from _squad_records(document["data"], path)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            if not isinstance(value, dict):
                raise TfftError(f"{path}:[{index}]: expected a JSON object; fix the file")
            yield Record(value, path, index + 1, f"[{index}]")
    elif isinstance(document, dict):
        yield Record(document, path, 1)
    else:
        raise TfftError(f"{path}: expected a JSON object or list; fix the file")


def _squad_records(articles: Any, path: str) -> Iterator[Record]:
    """One record per question of a SQuAD ``data`` list, with its paragraph's context."""
    count = 0
    for a, article in enumerate(_json_list(articles, path, "data")):
        title = article.get("title", "")
        for p, paragraph in enumerate(_json_list(article.get("paragraphs"), path, f"data[{a}].paragraphs")):
            where = f"data[{a}].paragraphs[{p}]"
            for q, question in enumerate(_json_list(paragraph.get("qas"), path, f"{where}.qas")):
                count += 1
                fields = {"title": title, "context": paragraph.get("context"), **question}
                yield Record(fields, path, count, f"{where}.qas[{q}]")


def _json_list(value: Any, path: str, key: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TfftError(f"{path}:{key}: expected a list of objects as in SQuAD files; fix the file")
    return value


def _read_conll(path: str, data: DataConfig) -> Iterator[Record]:
    """CoNLL column files; every token line must have as many columns as the first."""
    width, rows, start = 0, [], 0

    def sentence() -> Record:
        columns = [list(column) for column in zip(*rows, strict=True)]
        return Record({"tokens": columns[0], "columns": columns}, path, start)

    with tf.io.gfile.GFile(path, "r") as file:
        for line, text in enumerate(file, start=1):
            cells = text.lstrip(BYTE_ORDER_MARK).split()
            if cells and cells[0] == CONLL_DOCUMENT_START:
                cells = []
            if not cells:
                if rows:
                    yield sentence()
                rows = []
                continue
            width = width or len(cells)
            if len(cells) != width:
                raise TfftError(
                    f"{located(path, line)}: expected {width} columns as on the first token line, "
                    f"found {len(cells)}; fix the line (tokens must not contain spaces)"
                )
            start = line if not rows else start
            rows.append(cells)
    if rows:
        yield sentence()


def _read_tfds(spec: str, data: DataConfig) -> Iterator[Record]:
    """``tfds:NAME[/CONFIG]/SPLIT`` (e.g. ``tfds:glue/sst2/train``) via tensorflow-datasets."""
    name, _, split = spec[len(TFDS_PREFIX):].rpartition("/")
    if not name or not split:
        raise TfftError(f"TFDS input '{spec}' must look like 'tfds:NAME/SPLIT', e.g. tfds:glue/sst2/train")
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, shuffle_files=False)
    except Exception as error:  # noqa: BLE001 - TFDS raises many types for one cause.
        raise TfftError(
            f"cannot load TFDS dataset '{spec}' ({reason(error)}); check the name and split, "
            "the network, or use a local file"
        ) from None
    for index, example in enumerate(tfds.as_numpy(dataset), start=1):
        yield Record({key: _plain(value) for key, value in example.items()}, spec, index)


def _plain(value: Any) -> Any:
    """Turns a TFDS numpy value (possibly a dict or array of them) into Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "tolist") and getattr(value, "ndim", 0):
        return [_plain(item) for item in value]
    return value.item() if hasattr(value, "item") else value


for _name, _reader, _suffixes in (
    ("tsv", _read_delimited, (".tsv",)), ("csv", _read_delimited, (".csv",)),
    ("jsonl", _read_jsonl, (".jsonl",)), ("json", _read_json, (".json",)),
    ("conll", _read_conll, (".conll",)), ("tfds", _read_tfds, ()),
):
    register_format(_name, _reader, _suffixes)
