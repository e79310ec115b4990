"""Reading raw records from TSV, CSV, JSON(L), CoNLL files and TensorFlow Datasets.

A *record* is one row as a dict of column name to value, with the place it came
from, so every later error can name the file and line. Files are read through
``tf.io.gfile``, so ``gs://`` paths work where TensorFlow's GCS support is installed;
an ``input_path`` with ``*``, ``?`` or ``[`` reads every matching file in name order.
Files are UTF-8 text, with or without a byte order mark, with Unix or Windows (CRLF)
line ends, and may be gzip-compressed (``train.tsv.gz``: a ``.gz`` suffix is looked
past when the format is inferred). Formats are registered by name
(:func:`register_format`): the built-in ones here, and any a task module adds for the
layouts its datasets are published in. A task may also declare what a suffix means
for its data (e.g. ``.txt`` files as CoNLL for token classification) and pass that
to :func:`read_data`.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import dataclasses
import gzip
import io
import itertools
import json
import posixpath
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tensorflow as tf

from tfft.config import DataConfig
from tfft.errors import TfftError, located, reason

TFDS_PREFIX = "tfds:"
#: Ends the name of a gzip-compressed file, which is read as the file it holds.
GZIP_SUFFIX = ".gz"
#: The first bytes of gzip and zip files.
_GZIP_MAGIC, _ZIP_MAGIC = b"\x1f\x8b", b"PK\x03\x04"
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


def infer_format(path: str, declared: str = "auto", suffixes: Mapping[str, str] | None = None) -> str:
    """The input format named in the config, or inferred from the path.

    Args:
        path: The input path (a file, a glob or a ``tfds:`` spec).
        declared: ``task.*_data.format``; ``auto`` infers it from the path.
        suffixes: What file-name suffixes mean for the task's data (e.g. ``{".txt": "conll"}``),
            over the suffixes of registered formats.

    Returns:
        The format's name. The longest matching suffix wins; a ``.gz`` ending is looked past.

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
    known = {**_SUFFIXES, **{suffix.lower(): fmt for suffix, fmt in (suffixes or {}).items()}}
    name = path.lower().removesuffix(GZIP_SUFFIX)
    matches = [suffix for suffix in known if name.endswith(suffix)]
    if matches:
        return known[max(matches, key=len)]
    raise TfftError(
        f"cannot tell the format of '{path}' from its name; use a {'/'.join(sorted(known))} suffix "
        f"(gzip files: the same and {GZIP_SUFFIX}), 'tfds:NAME/SPLIT', or set the data's 'format' key "
        f"to one of {', '.join(format_names())}"
    )


def read_data(data: DataConfig, suffixes: Mapping[str, str] | None = None,
              column_names: Mapping[str, str] | None = None) -> list[Record]:
    """Reads the records of one split: ``data.input_path`` in ``data.format``.

    Up to ``data.max_examples`` records (0 = all). CoNLL files give one record per
    sentence with ``tokens`` (the first column) and ``columns`` (every column, one list
    per column). ``.json`` files may be a SQuAD document (``{"data": [{"paragraphs":
    [{"context", "qas"}]}]}``: one record per question with ``id``, ``title``,
    ``context``, ``question``, ``answers`` and, in SQuAD 2.0, ``is_impossible``), a JSON
    list of objects, a single object, or JSON Lines. TSV and CSV files have a header row
    unless ``data.columns`` names the columns.

    Args:
        data: The split's config.
        suffixes: What file-name suffixes mean for the task's data, for ``format: auto``
            (see :func:`infer_format`).
        column_names: Columns readable under another name too, ``{name in the data: new
            name}`` (``task.column_names``); a name the data does not have is skipped, so one
            mapping serves a dataset's TSV files and its TFDS version.

    Raises:
        TfftError: for a missing file, a folder, a malformed row, an unknown format, or a
            column given a name the data already has.
    """
    path = data.input_path
    check_max_examples(path, data.max_examples)
    files = [] if path.startswith(TFDS_PREFIX) else _files(path)
    fmt = infer_format(path, data.format, suffixes)
    if fmt == TFRECORD_FORMAT:
        raise TfftError(f"'{path}' is TFRecord, which holds no text; use the file it was made from")
    data = dataclasses.replace(data, format=fmt)
    if fmt == "tfds":
        rows = _read_tfds(path, data)
    else:
        rows = itertools.chain.from_iterable(_READERS[fmt](file, data) for file in files)
    if column_names:
        rows = (_renamed(record, column_names) for record in rows)
    records = list(itertools.islice(rows, data.max_examples or None))
    if not records:
        raise TfftError(f"input '{path}' holds no examples; check the file or the TFDS split")
    return records


def _renamed(record: Record, column_names: Mapping[str, str]) -> Record:
    """``record`` with its columns named in ``column_names`` also under their new names."""
    renames = {old: new for old, new in column_names.items() if old in record.fields and old != new}
    if not renames:
        return record
    for old, new in renames.items():
        if new in record.fields:
            raise TfftError(
                f"{record.where}: task.column_names names column '{old}' '{new}', which the data "
                f"already has; drop '{old}' from task.column_names"
            )
    return dataclasses.replace(record, fields={
        **record.fields, **{new: record.fields[old] for old, new in renames.items()}})


def check_max_examples(path: str, max_examples: int) -> None:
    """Checks a ``task.*_data.max_examples`` value.

    Raises:
        TfftError: for a negative value.
    """
    if max_examples < 0:
        raise TfftError(f"max_examples of '{path}' is {max_examples}; set task.*_data.max_examples "
                        "to 0 (all) or the number of examples to read")


def read_records(path: str, fmt: str = "auto", max_examples: int = 0, columns=(),
                 encoding: str = "utf-8") -> list[Record]:
    """:func:`read_data` of a path, format, example limit, header-less column names and encoding."""
    data = DataConfig(input_path=path, max_examples=max_examples, format=fmt, columns=list(columns),
                      encoding=encoding)
    return read_data(data)


def _files(path: str) -> list[str]:
    """The file ``path``, or the files matching the glob pattern ``path`` in name order."""
    if not any(char in path for char in GLOB_CHARACTERS):
        if not tf.io.gfile.exists(path):
            raise TfftError(f"input file '{path}' does not exist; check the input_path in the config")
        if tf.io.gfile.isdir(path):
            raise TfftError(
                f"input_path '{path}' is a folder; set it to a file in it or to a glob of its files, "
                f"e.g. '{posixpath.join(path, _pattern_of(tf.io.gfile.listdir(path)))}'"
            )
        return [path]
    files = sorted(tf.io.gfile.glob(path))
    if not files:
        raise TfftError(f"no input file matches '{path}'; check the input_path in the config")
    return files


def _pattern_of(names: list[str]) -> str:
    """A glob for a folder's files: ``*`` and their most common suffix (``train-*`` for TFRecord files)."""
    counts = collections.Counter(posixpath.splitext(name.removesuffix(GZIP_SUFFIX))[1] for name in names)
    suffix = max(counts, key=lambda s: (bool(s), counts[s]), default="")
    return f"train-*{suffix}" if suffix == f".{TFRECORD_FORMAT}" else f"*{suffix}"


class _GFileStream(io.RawIOBase):
    """A ``tf.io.gfile.GFile`` opened for bytes, as the raw stream ``io`` buffers read from."""

    def __init__(self, file: tf.io.gfile.GFile):
        super().__init__()
        self._file = file

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer) -> int:  # noqa: D102
        data = self._file.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:  # noqa: D102
        self._file.close()
        super().close()


@contextlib.contextmanager
def open_text(path: str, encoding: str = "utf-8") -> Iterator[io.TextIOBase]:
    """Opens a text file (local or ``gs://``) for reading, gunzipping gzip files.

    A byte order mark at the start is dropped; line ends are kept as in the file
    (Windows' CRLF too), as :mod:`csv` wants them. Formats that a task registers read their
    files with this too.

    Args:
        path: The file.
        encoding: Its text encoding (``task.*_data.encoding``); ``utf-8`` reads files with
            or without a byte order mark.

    Yields:
        The file's text.

    Raises:
        TfftError: for a zip archive, a damaged gzip file, an unknown encoding, or bytes
            that are not text in ``encoding`` (naming the line).
    """
    encoding = _codec(encoding)
    with io.BufferedReader(_GFileStream(tf.io.gfile.GFile(path, "rb")), 1 << 20) as raw:
        start = raw.peek(len(_ZIP_MAGIC))[:len(_ZIP_MAGIC)]
        if start == _ZIP_MAGIC:
            raise TfftError(f"'{path}' is a zip archive; unzip it and set input_path to the data file inside")
        binary = gzip.GzipFile(fileobj=raw, mode="rb") if start.startswith(_GZIP_MAGIC) else raw
        utf16 = _utf16_kind(binary.peek(4)[:4]) if encoding == "utf-8-sig" else None
        if utf16:
            raise TfftError(f"'{path}' is UTF-16 text ({utf16[0]}); set the data's encoding key "
                            f"(task.*_data.encoding={utf16[1]}) or save it as UTF-8")
        with io.TextIOWrapper(binary, encoding=encoding, newline="") as text:
            try:
                yield text
            except UnicodeDecodeError as error:
                raise _not_text(path, encoding, error) from None
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise TfftError(
                    f"'{path}' is a damaged gzip file ({error}); download or compress it again"
                ) from None


def _utf16_kind(start: bytes) -> tuple[str, str] | None:
    """``(what the start shows, encoding to set)`` if a file starts as UTF-16 text does, else None."""
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "it starts with a UTF-16 byte order mark", "utf-16"
    if len(start) == 4 and start[1] == start[3] == 0 and start[0] and start[2]:
        return "every other byte is zero, without a byte order mark", "utf-16-le"
    if len(start) == 4 and start[0] == start[2] == 0 and start[1] and start[3]:
        return "every other byte is zero, without a byte order mark", "utf-16-be"
    return None


def _codec(encoding: str) -> str:
    """Python's codec name for ``encoding`` (``utf-8-sig`` for UTF-8: a byte order mark is dropped)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise TfftError(f"unknown text encoding '{encoding}' in task.*_data.encoding; use e.g. utf-8, "
                        "latin-1, cp1252 or utf-16") from None
    return "utf-8-sig" if name == "utf-8" else name


def _not_text(path: str, encoding: str, error: UnicodeDecodeError) -> TfftError:
    """The error for bytes that ``encoding`` cannot decode, naming their line where it can be found."""
    where, bad = path, error.object[error.start:error.end]
    with contextlib.suppress(Exception):  # The line is a courtesy: a second read may fail too.
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        decoder = codecs.getincrementaldecoder(encoding)()
        for number, line in enumerate(data.splitlines(keepends=True), start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as at_line:
                where, bad = f"{path}:{number}", at_line.object[at_line.start:at_line.end]
                break
    name = "UTF-8" if encoding == "utf-8-sig" else encoding
    return TfftError(
        f"{where}: not {name} text (it holds the byte {bad[:4]!r}); if the file is in another encoding "
        "set the data's encoding key (task.*_data.encoding, e.g. latin-1 or cp1252), else save it as UTF-8"
    )


def text_lines(file: io.TextIOBase, path: str) -> Iterator[str]:
    """The lines of an open text file, refusing NUL bytes (a binary file, or UTF-16 read as UTF-8).

    Raises:
        TfftError: naming the line with a NUL byte.
    """
    for number, line in enumerate(file, start=1):
        if "\0" in line:
            raise TfftError(
                f"{located(path, number)}: holds a NUL byte, which text has not (a binary file, or "
                "UTF-16 text: then set task.*_data.encoding=utf-16); remove it or give the right file"
            )
        yield line


def _read_delimited(path: str, data: DataConfig) -> Iterator[Record]:
    """GLUE-style TSV (no quoting, as GLUE writes it) or quoted CSV, with a header row.

    Files without a header (e.g. GoEmotions, CoLA) get their column names from
    ``data.columns``; then every line is data.
    """
    fmt = data.format
    delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
    header = [str(name) for name in data.columns]
    what = "as task.*_data.columns names" if header else "as in the header"
    csv.field_size_limit(_FIELD_SIZE_LIMIT)
    with open_text(path, data.encoding) as file:
        reader = csv.reader(text_lines(file, path), delimiter=delimiter, quoting=quoting)
        for row in reader:
            line = reader.line_num
            if not header:
                header = row
                _check_header(header, path)
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise TfftError(
                    f"{located(path, line)}: expected {len(header)} {fmt.upper()} fields "
                    f"{what}, found {len(row)}; fix or remove the row"
                )
            yield Record(dict(zip(header, row, strict=True)), path, line)


#: The largest TSV/CSV field read (the csv module's default, 128 KiB, is less than some texts).
_FIELD_SIZE_LIMIT = 2**31 - 1


def _check_header(header: list[str], path: str) -> None:
    """Refuses a header row that names a column twice (one of them would be lost)."""
    seen = set()
    for name in header:
        if name in seen:
            raise TfftError(f"{located(path, 1)}: the header names column '{name}' twice; rename one "
                            "of them (or name the columns with task.*_data.columns)")
        seen.add(name)


def _too_deep(where: str) -> TfftError:
    limit = sys.getrecursionlimit()
    return TfftError(f"{where}: JSON nested deeper than the parser's limit of about {limit} levels; "
                     "flatten the data")


def _read_jsonl(path: str, data: DataConfig) -> Iterator[Record]:
    """One JSON object per line."""
    with open_text(path, data.encoding) as file:
        for line, text in enumerate(text_lines(file, path), start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise TfftError(
                    f"{located(path, line)}: invalid JSON at column {error.colno} "
                    f"({error.msg}); fix the line"
                ) from None
            except RecursionError:
                raise _too_deep(located(path, line)) from None
            if not isinstance(value, dict):
                raise TfftError(f"{located(path, line)}: expected a JSON object; fix the line")
            yield Record(value, path, line)


def _read_json(path: str, data: DataConfig) -> Iterator[Record]:
    """A whole JSON document: SQuAD layout or a list of objects; JSON Lines otherwise."""
    with open_text(path, data.encoding) as file:
        text = file.read()
    try:
        document = json.loads(text)
    except RecursionError:
        raise _too_deep(path) from None
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

    with open_text(path, data.encoding) as file:
        for line, text in enumerate(text_lines(file, path), start=1):
            cells = text.split()
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
