"""Reading raw records from TSV, CSV, JSON(L), CoNLL files and TensorFlow Datasets.

A *record* is one row as a dict of column name to value, with the place it came
from, so every later error can name the file and line. Files are read through
``tf.io.gfile``, so ``gs://`` paths work where TensorFlow's GCS support is installed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

from tfft.errors import TfftError, located, reason

TFDS_PREFIX = "tfds:"
#: Written at the start of "UTF-8 with BOM" files (e.g. by spreadsheet programs).
BYTE_ORDER_MARK = "\ufeff"
_SUFFIX_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".conll": "conll"}
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


def infer_format(path: str, declared: str = "auto") -> str:
    """The input format named in the config, or inferred from the path."""
    if declared != "auto":
        return declared
    if path.startswith(TFDS_PREFIX):
        return "tfds"
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if path.lower().endswith(suffix):
            return fmt
    raise TfftError(
        f"cannot tell the format of '{path}' from its name; use a .tsv/.csv/.jsonl/.conll suffix, "
        "'tfds:NAME/SPLIT', or set the data's 'format' key"
    )


def read_records(path: str, fmt: str = "auto", max_examples: int = 0) -> list[Record]:
    """Reads up to ``max_examples`` records (0 = all) from ``path``.

    CoNLL files give one record per sentence with ``tokens`` (the first column) and
    ``columns`` (every column, one list per column). ``.json`` files may be a SQuAD
    document (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``: one record per
    question with ``id``, ``title``, ``context``, ``question``, ``answers`` and, in
    SQuAD 2.0, ``is_impossible``), a JSON list of objects, or JSON Lines.

    Raises:
        TfftError: for a missing file, a malformed row or an unknown format.
    """
    fmt = infer_format(path, fmt)
    if fmt == "tfds":
        rows = _read_tfds(path)
    else:
        if not tf.io.gfile.exists(path):
            raise TfftError(f"input file '{path}' does not exist; check the input_path in the config")
        readers = {"tsv": _read_delimited, "csv": _read_delimited, "jsonl": _read_jsonl,
                   "json": _read_json, "conll": _read_conll}
        rows = readers[fmt](path, fmt)
    records = []
    for record in rows:
        records.append(record)
        if max_examples and len(records) >= max_examples:
            break
    if not records:
        raise TfftError(f"input '{path}' holds no examples; check the file or the TFDS split")
    return records


def _read_delimited(path: str, fmt: str) -> Iterator[Record]:
    """GLUE-style TSV (no quoting, as GLUE writes it) or quoted CSV, with a header row."""
    delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
    with tf.io.gfile.GFile(path, "r") as file:
        reader = csv.reader(file, delimiter=delimiter, quoting=quoting)
        try:
            header = next(reader)
        except StopIteration:
            return
        header[0] = header[0].lstrip(BYTE_ORDER_MARK)
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise TfftError(
                    f"{located(path, line)}: expected {len(header)} {fmt.upper()} fields "
                    f"as in the header, found {len(row)}; fix or remove the row"
                )
            yield Record(dict(zip(header, row, strict=True)), path, line)


def _read_jsonl(path: str, fmt: str) -> Iterator[Record]:
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


def _read_json(path: str, fmt: str) -> Iterator[Record]:
    """A whole JSON document: SQuAD layout or a list of objects; JSON Lines otherwise."""
    with tf.io.gfile.GFile(path, "r") as file:
        text = file.read().lstrip(BYTE_ORDER_MARK)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # More than one value: JSON Lines.
            yield from _read_jsonl(path, fmt)
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


def _read_conll(path: str, fmt: str) -> Iterator[Record]:
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


def _read_tfds(spec: str) -> Iterator[Record]:
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
