"""Reading records from TSV, CSV, JSONL files and TensorFlow Datasets."""

from __future__ import annotations

import gzip
import json
import re
import zipfile

import pytest
from conftest import SHARED_DATA

from tfft.config import DataConfig
from tfft.data import sources
from tfft.data.sources import Record, format_names, infer_format, read_data, read_records, register_format
from tfft.errors import TfftError


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def at(path: str, line: int) -> str:
    """Regex for ``path:line`` not followed by another digit."""
    return re.escape(f"{path}:{line}") + r"(?!\d)"


# --- TSV -------------------------------------------------------------------------------------------


def test_tsv_reads_rows_with_header_and_line_numbers(tmp_path):
    path = write(tmp_path / "train.tsv", "sentence\tlabel\nit is good\t1\nit is bad\t0\n")
    records = read_records(path)
    assert records == [
        Record({"sentence": "it is good", "label": "1"}, path, 2),
        Record({"sentence": "it is bad", "label": "0"}, path, 3),
    ]
    assert records[1].where == f"{path}:3"


def test_tsv_keeps_quotes_verbatim(tmp_path):
    # GLUE files are not quoted: a double quote is text, even an unbalanced one.
    rows = [
        'a "quoted" word\t1',
        '"starts with a quote\t0',
        'ends with a quote"\t1',
        "it's fine, really\t0",
    ]
    path = write(tmp_path / "quotes.tsv", "sentence\tlabel\n" + "\n".join(rows) + "\n")
    records = read_records(path)
    assert [r.fields["sentence"] for r in records] == [row.split("\t")[0] for row in rows]
    assert [r.line for r in records] == [2, 3, 4, 5]


def test_tsv_skips_blank_lines_but_counts_them(tmp_path):
    path = write(tmp_path / "blank.tsv", "sentence\tlabel\n\nfirst\t1\n\t\n   \t \nsecond\t0\n\n")
    records = read_records(path)
    assert [(r.fields["sentence"], r.line) for r in records] == [("first", 3), ("second", 6)]


def test_tsv_wrong_number_of_fields_names_file_and_line(tmp_path):
    path = write(tmp_path / "ragged.tsv", "sentence\tlabel\nok\t1\n\nalso ok\t0\nbad\t1\textra\nok\t0\n")
    with pytest.raises(TfftError, match=at(path, 5) + r": expected 2 TSV fields as in the header, found 3"):
        read_records(path)


def test_tsv_too_few_fields(tmp_path):
    path = write(tmp_path / "short.tsv", "a\tb\tc\n1\t2\t3\n1\t2\n")
    with pytest.raises(TfftError, match=at(path, 3) + r": expected 3 TSV fields as in the header, found 2"):
        read_records(path)


def test_max_examples(tmp_path):
    lines = "".join(f"sentence {i}\t{i % 2}\n" for i in range(10))
    path = write(tmp_path / "ten.tsv", "sentence\tlabel\n" + lines)
    assert len(read_records(path)) == 10
    first3 = read_records(path, max_examples=3)
    assert [r.fields["sentence"] for r in first3] == ["sentence 0", "sentence 1", "sentence 2"]
    assert len(read_records(path, max_examples=50)) == 10


def test_max_examples_stops_before_a_later_bad_row(tmp_path):
    path = write(tmp_path / "late_error.tsv", "sentence\tlabel\na\t1\nb\t0\nbroken row\n")
    assert len(read_records(path, max_examples=2)) == 2
    with pytest.raises(TfftError, match=at(path, 4)):
        read_records(path)


def test_real_sts_b_dev_with_unbalanced_quotes():
    path = SHARED_DATA / "glue" / "STS-B" / "dev.tsv"
    assert path.is_file(), f"shared data missing at {path}"
    records = read_records(str(path))
    assert len(records) == 1500
    assert all(len(r.fields) == 10 for r in records)
    assert list(records[0].fields) == [
        "index", "genre", "filename", "year", "old_index", "source1", "source2",
        "sentence1", "sentence2", "score",
    ]
    assert records[0].fields["sentence1"] == "A man with a hard hat is dancing."
    assert records[0].fields["score"] == "5.000"
    assert records[-1].line == 1501
    # Quotes are part of the text; with CSV quoting these rows would swallow their neighbours.
    quoted = [r for r in records if '"' in r.fields["sentence1"] + r.fields["sentence2"]]
    assert quoted
    raw_lines = path.read_text(encoding="utf-8").splitlines()
    for record in quoted:
        assert "\t".join(record.fields.values()) == raw_lines[record.line - 1]


def test_windows_line_endings(tmp_path):
    tsv = tmp_path / "crlf.tsv"
    tsv.write_bytes(b"sentence\tlabel\r\na b\t1\r\n\r\nc\t0\r\n")
    assert [(r.fields, r.line) for r in read_records(str(tsv))] == [
        ({"sentence": "a b", "label": "1"}, 2), ({"sentence": "c", "label": "0"}, 4)
    ]
    jsonl = tmp_path / "crlf.jsonl"
    jsonl.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\r\n')
    assert [(r.fields, r.line) for r in read_records(str(jsonl))] == [({"a": 1}, 1), ({"a": 2}, 3)]


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("text,label\nhello,1\n".encode("utf-8-sig"))
    assert list(read_records(str(path))[0].fields) == ["text", "label"]


@pytest.mark.parametrize(
    ("name", "text"),
    [("a.conll", "EU B-ORG\nrejects O\n\nPeter B-PER\n"),
     ("a.json", '[{"a": 1},\n{"a": 2}]\n'),
     ("squad.json", '{"data": [{"title": "t",\n"paragraphs": [{"context": "c", "qas": [{"id": "q"}]}]}]}'),
     ("headerless.tsv", "a b\t1\nc\t0\n")],
)
def test_byte_order_mark_and_windows_line_endings_in_every_format(tmp_path, name, text):
    plain = tmp_path / "plain" / name
    plain.parent.mkdir()
    plain.write_text(text)
    windows = tmp_path / name
    windows.write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
    columns = ["sentence", "label"] if name.endswith(".tsv") else []
    expected = [(r.fields, r.line) for r in read_records(str(plain), columns=columns)]
    assert [(r.fields, r.line) for r in read_records(str(windows), columns=columns)] == expected


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_handles_quoted_commas_and_quotes(tmp_path):
    path = write(
        tmp_path / "data.csv",
        'text,label\n"hello, world",pos\nplain,neg\n"she said ""hi"", then left",pos\n',
    )
    records = read_records(path)
    assert [r.fields for r in records] == [
        {"text": "hello, world", "label": "pos"},
        {"text": "plain", "label": "neg"},
        {"text": 'she said "hi", then left', "label": "pos"},
    ]
    assert [r.line for r in records] == [2, 3, 4]


def test_csv_wrong_number_of_fields(tmp_path):
    path = write(tmp_path / "bad.csv", "text,label\n\"a, b\",1\na, b,1\n")
    with pytest.raises(TfftError, match=at(path, 3) + r": expected 2 CSV fields as in the header, found 3"):
        read_records(path)


# --- JSONL -----------------------------------------------------------------------------------------


def test_jsonl_reads_objects_with_types_and_skips_blank_lines(tmp_path):
    rows = [{"sentence": "good", "label": 1}, {"sentence": 'say "x"', "label": 0, "extra": [1, 2]}]
    path = write(tmp_path / "data.jsonl", "\n" + json.dumps(rows[0]) + "\n  \n" + json.dumps(rows[1]) + "\n")
    records = read_records(path)
    assert [r.fields for r in records] == rows
    assert isinstance(records[0].fields["label"], int)
    assert [r.line for r in records] == [2, 4]


def test_json_suffix_is_read_as_jsonl(tmp_path):
    path = write(tmp_path / "data.json", '{"a": 1}\n{"a": 2}\n')
    assert [r.fields["a"] for r in read_records(path)] == [1, 2]


def test_jsonl_invalid_line_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(TfftError, match=at(path, 3) + r": invalid JSON at column \d+"):
        read_records(path)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "list.jsonl", '{"a": 1}\n["a", 1]\n')
    with pytest.raises(TfftError, match=at(path, 2) + r": expected a JSON object"):
        read_records(path)


def test_jsonl_max_examples(tmp_path):
    path = write(tmp_path / "many.jsonl", "".join(json.dumps({"i": i}) + "\n" for i in range(6)))
    assert [r.fields["i"] for r in read_records(path, max_examples=4)] == [0, 1, 2, 3]


# --- formats and file errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "declared", "expected"),
    [
        ("a/train.tsv", "auto", "tsv"),
        ("a/TRAIN.TSV", "auto", "tsv"),
        ("gs://bucket/x.csv", "auto", "csv"),
        ("x.jsonl", "auto", "jsonl"),
        ("x.json", "auto", "json"),
        ("tfds:glue/sst2/train", "auto", "tfds"),
        ("x.txt", "tsv", "tsv"),
        ("x.tsv", "csv", "csv"),
        ("glue/train.tsv.gz", "auto", "tsv"),
        ("x.JSONL.GZ", "auto", "jsonl"),
        ("x.csv.gz", "tsv", "tsv"),
    ],
)
def test_infer_format(path, declared, expected):
    assert infer_format(path, declared) == expected


def test_a_task_says_what_a_suffix_means_for_its_data(tmp_path):
    suffixes = {".txt": "conll", ".json": "jsonl"}
    assert infer_format("conll2003/train.txt", "auto", suffixes) == "conll"
    assert infer_format("train.TXT.gz", "auto", suffixes) == "conll"
    assert infer_format("x.json", "auto", suffixes) == "jsonl"  # Over the registered meaning.
    assert infer_format("x.jsonl", "auto", suffixes) == "jsonl"
    assert infer_format("x.tsv", "auto", suffixes) == "tsv"
    assert infer_format("x.txt", "tsv", suffixes) == "tsv"  # A declared format wins.
    with pytest.raises(TfftError, match=r"use a \.conll/\.csv/\.json/\.jsonl/\.tsv/\.txt suffix"):
        infer_format("x.dat", "auto", suffixes)
    path = write(tmp_path / "a.txt", "EU B-ORG\n\nPeter B-PER\n")
    data = DataConfig(input_path=path)
    assert [r.fields["tokens"] for r in read_data(data, suffixes)] == [["EU"], ["Peter"]]
    with pytest.raises(TfftError, match="cannot tell the format"):  # Other tasks: no meaning.
        read_data(data)


def test_unknown_suffix_is_an_error(tmp_path):
    path = write(tmp_path / "data.txt", "sentence\tlabel\nx\t1\n")
    with pytest.raises(TfftError, match=rf"cannot tell the format of '{re.escape(path)}' from its name"):
        read_records(path)
    # Declaring the format reads the same file.
    assert read_records(path, "tsv")[0].fields == {"sentence": "x", "label": "1"}


def test_unknown_format_name_lists_the_known_ones(tmp_path):
    path = write(tmp_path / "data.tsv", "sentence\tlabel\nx\t1\n")
    assert {"auto", "conll", "csv", "json", "jsonl", "tfds", "tfrecord", "tsv"} <= set(format_names())
    with pytest.raises(TfftError, match=rf"^input '{re.escape(path)}' has unknown format 'parquet'; set "
                                        r"task\.\*_data\.format to one of "
                                        + re.escape(", ".join(format_names())) + "$"):
        read_records(path, "parquet")


def test_a_registered_format_is_read_by_name_and_suffix(tmp_path):
    def read_pipes(path, data):
        with open(path) as file:
            for line, text in enumerate(file, start=1):
                cells = text.rstrip("\n").split("|")
                yield Record(dict(zip(("sentence", "label"), cells, strict=True)), path, line)

    register_format("pipes_test", read_pipes, (".pipes",))
    try:
        path = write(tmp_path / "data.pipes", "good film|1\nbad film|0\n")
        assert [r.fields["label"] for r in read_records(path)] == ["1", "0"]
        assert infer_format(path) == "pipes_test" and "pipes_test" in format_names()
        assert read_records(str(tmp_path / "*.pipes"), "pipes_test")[1].where == f"{path}:2"
    finally:
        sources._READERS.pop("pipes_test"), sources._SUFFIXES.pop(".pipes")


def test_glob_reads_every_matching_file_in_name_order(tmp_path):
    for name, rows in (("b.jsonl", ['{"x": 3}']), ("a.jsonl", ['{"x": 1}', '{"x": 2}'])):
        write(tmp_path / name, "\n".join(rows) + "\n")
    records = read_records(str(tmp_path / "*.jsonl"))
    assert [r.fields["x"] for r in records] == [1, 2, 3]
    assert records[2].where == f"{tmp_path / 'b.jsonl'}:1"
    assert len(read_records(str(tmp_path / "*.jsonl"), max_examples=2)) == 2
    missing = str(tmp_path / "nothing-*.jsonl")
    with pytest.raises(TfftError, match=rf"no input file matches '{re.escape(missing)}'"):
        read_records(missing)


def test_header_less_tsv_takes_column_names_from_the_config(tmp_path):
    path = write(tmp_path / "goemotions.tsv", '\ufeffMy "favourite" food\t27\teebbqej\nWHY\t2,3\tx\n')
    records = read_records(path, columns=["text", "labels", "id"])
    assert records[0] == Record({"text": 'My "favourite" food', "labels": "27", "id": "eebbqej"}, path, 1)
    assert records[1].fields["labels"] == "2,3"
    bad = write(tmp_path / "bad.tsv", "a\tb\n")
    with pytest.raises(TfftError, match=rf"{at(bad, 1)}: expected 3 TSV fields as task\.\*_data\.columns"):
        read_records(bad, columns=["text", "labels", "id"])


def test_gzip_files_are_read_as_the_file_they_hold(tmp_path):
    text = "sentence\tlabel\r\nit is good\t1\r\nit is bad\t0\r\n"
    expected = [(r.fields, r.line) for r in read_records(write(tmp_path / "plain.tsv", text))]
    for name, fmt in (("train.tsv.gz", "auto"), ("train.data", "tsv")):  # By content, not by name.
        (tmp_path / name).write_bytes(gzip.compress(text.encode("utf-8-sig")))
        assert [(r.fields, r.line) for r in read_records(str(tmp_path / name), fmt)] == expected
    rows = "".join(json.dumps({"i": i}) + "\n" for i in range(5))
    (tmp_path / "many.jsonl.gz").write_bytes(gzip.compress(rows.encode()))
    assert [r.fields["i"] for r in read_records(str(tmp_path / "*.jsonl.gz"), max_examples=3)] == [0, 1, 2]


def test_unreadable_files_say_what_to_do(tmp_path):
    damaged = tmp_path / "damaged.tsv.gz"
    damaged.write_bytes(gzip.compress(b"sentence\tlabel\n" * 100)[:30])
    with pytest.raises(TfftError, match=rf"^'{re.escape(str(damaged))}' is a damaged gzip file \(.+\); "
                                        "download or compress it again$"):
        read_records(str(damaged))
    archive = tmp_path / "glue.tsv"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("train.tsv", "sentence\tlabel\n")
    with pytest.raises(TfftError, match=rf"^'{re.escape(str(archive))}' is a zip archive; unzip it"):
        read_records(str(archive))
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("sentence\tlabel\ncaf\u00e9\t1\n".encode("latin-1"))
    with pytest.raises(TfftError, match=rf"^{re.escape(str(latin))}:2: not UTF-8 text \(it holds the byte "
                                        r"b'\\xe9'\); if the file is in another encoding set the data's "
                                        r"encoding key \(task\.\*_data\.encoding, e\.g\. latin-1"):
        read_records(str(latin))
    assert read_records(str(latin), encoding="latin-1")[0].fields["sentence"] == "caf\u00e9"


def test_a_folder_as_input_path_names_a_glob_of_its_files(tmp_path):
    for name in ("middle_1.txt", "middle_2.txt", "README"):
        write(tmp_path / name, "{}")
    with pytest.raises(TfftError, match=rf"^input_path '{re.escape(str(tmp_path))}' is a folder; set it to a "
                                        rf"file in it or to a glob of its files, e\.g\. "
                                        rf"'{re.escape(str(tmp_path / '*.txt'))}'$"):
        read_records(str(tmp_path))  # Before the folder's name is taken for a format.
    # RACE as released: a folder of .txt files holding a JSON passage each.
    assert len(read_records(str(tmp_path / "*.txt"), "json")) == 2
    records = tmp_path / "records"
    records.mkdir()
    for name in ("train-00000-of-00001.tfrecord", "validation-00000-of-00001.tfrecord", "metadata.json"):
        write(records / name, "")
    with pytest.raises(TfftError, match=re.escape(f"e.g. '{records / 'train-*.tfrecord'}'")):
        read_records(str(records))


def test_negative_max_examples_is_an_error(tmp_path):
    path = write(tmp_path / "data.tsv", "sentence\tlabel\nx\t1\n")
    with pytest.raises(TfftError, match=r"max_examples of .* is -1; set task\.\*_data\.max_examples to 0"):
        read_records(path, max_examples=-1)


def test_missing_file(tmp_path):
    path = str(tmp_path / "missing.tsv")
    with pytest.raises(TfftError, match=rf"input file '{re.escape(path)}' does not exist"):
        read_records(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.tsv", ""), ("header_only.tsv", "sentence\tlabel\n"), ("blank.tsv", "sentence\tlabel\n\n\n"),
     ("empty.jsonl", ""), ("blank.jsonl", "\n \n"), ("empty.csv", "")],
)
def test_empty_file_holds_no_examples(tmp_path, name, text):
    path = write(tmp_path / name, text)
    with pytest.raises(TfftError, match=rf"input '{re.escape(path)}' holds no examples"):
        read_records(path)


# --- TFDS ------------------------------------------------------------------------------------------


def test_tfds_with_mock_data():
    import tensorflow_datasets as tfds

    spec = "tfds:glue/sst2/validation"
    with tfds.testing.mock_data(num_examples=5):
        records = read_records(spec)
        limited = read_records(spec, max_examples=2)
    assert len(records) == 5
    assert len(limited) == 2
    for index, record in enumerate(records, start=1):
        assert set(record.fields) == {"sentence", "label", "idx"}
        assert type(record.fields["sentence"]) is str
        assert type(record.fields["label"]) is int
        assert record.fields["label"] in (0, 1)
        assert record.source == spec
        assert record.line == index
        assert record.where == f"{spec}:{index}"


@pytest.mark.parametrize("spec", ["tfds:nosplit", "tfds:glue/sst2/", "tfds:"])
def test_tfds_bad_spec(spec):
    with pytest.raises(TfftError, match=rf"TFDS input '{re.escape(spec)}' must look like 'tfds:NAME/SPLIT'"):
        read_records(spec)


def test_tfds_unknown_dataset():
    spec = "tfds:no_such_dataset_tfft/train"
    with pytest.raises(TfftError, match=rf"cannot load TFDS dataset '{re.escape(spec)}' \(.+\)"):
        read_records(spec)
