"""Hostile and messy input through ``tfft-train``: every case ends in one line, and no file changes.

Each :data:`BAD` case writes a malformed input (data files of every reader, TFRecord
files, configs, overrides) and runs ``tfft-train`` on a model_dir that holds an earlier
run's files. Each must end with exit status 1 and one line ``tfft-train: error: ...``
that names the input (``file:line`` where there is a line) and matches the case's
pattern, with no traceback, and leave the model_dir as it was. The :data:`GOOD` cases
are messy but valid (CRLF, byte order marks, other encodings when declared, a 10 MB
field...): they read as the clean file does.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, run_create_tfrecords, run_train

from tfft.config import build_config
from tfft.tasks import get_task

SST2, STSB = "configs/glue/sst2.yaml", "configs/glue/stsb.yaml"
CONLL, SQUAD = "configs/ner/conll2003.yaml", "configs/squad/squad_v1.yaml"
SEMEVAL = "configs/relation/semeval2010_task8.yaml"

SENTENCES = ("sentence\tlabel\na good film\t1\nan awful plot\t0\nthe best story, très bien\t1\n"
             "boring acting\t0\n")
PAIRS = "sentence1\tsentence2\tscore\na man plays\ta man is playing\t4.5\na cat\tthe sky\t0.2\n"
CONLL_TEXT = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
SEMEVAL_TEXT = ('1\t"The <e1>pen</e1> is in the <e2>box</e2>."\nContent-Container(e1,e2)\nComment:\n\n'
                '2\t"The <e1>fire</e1> made <e2>smoke</e2>."\nCause-Effect(e1,e2)\nComment:\n\n')


def squad_document(question="Who wrote it?", answer_start=0, context="Ann wrote it.") -> dict:
    qas = [{"id": "q1", "question": question, "answers": [{"text": "Ann", "answer_start": answer_start}]}]
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}


SQUAD_TEXT = json.dumps(squad_document())


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@dataclasses.dataclass(frozen=True)
class Bad:
    """A malformed input and the error it must end in.

    Attributes:
        name: The case's name (the test id).
        config: The config file.
        train: The training file's name and contents (bytes or text), or None for none written.
        error: A pattern for the message after ``tfft-train: error: `` (``{d}``: the case's folder).
        settings: More overrides (``{d}`` as above); the train/dev paths are set unless given.
        dev: The validation file's name and contents (default: a clean one of the config's kind).
        config_text: Contents of an extra config file ``extra.yaml`` (passed after ``config``).
        prepare: Writes more files into the case's folder.
    """

    name: str
    config: str
    train: tuple[str, bytes | str] | None
    error: str
    settings: tuple[str, ...] = ()
    dev: tuple[str, bytes | str] | None = None
    config_text: bytes | None = None
    prepare: Callable[[Path, Path], None] | None = None


CLEAN_DEV = {SST2: ("dev.tsv", SENTENCES), STSB: ("dev.tsv", PAIRS), CONLL: ("dev.txt", CONLL_TEXT),
             SQUAD: ("dev.json", SQUAD_TEXT), SEMEVAL: ("dev.txt", SEMEVAL_TEXT)}
NOT_UTF8 = r"{d}/{f}:{line}: not UTF-8 text \(it holds the byte b'\\x{byte}'\); if the file is in another " \
           r"encoding set the data's encoding key \(task\.\*_data\.encoding, e\.g\. latin-1 or cp1252\), " \
           r"else save it as UTF-8"


def not_utf8(file: str, line: int, byte: str) -> str:
    return NOT_UTF8.replace("{f}", file).replace("{line}", str(line)).replace("{byte}", byte)


def nul(file: str, line: int) -> str:
    return (rf"{{d}}/{file}:{line}: holds a NUL byte, which text has not \(a binary file, or UTF-16 text: "
            r"then set task\.\*_data\.encoding=utf-16\); remove it or give the right file")


def make_tfrecords(folder: Path, tiny_bert: Path, damage: Callable[[Path], None]) -> None:
    records, clean = folder / "records", folder / "clean.tsv"
    run_create_tfrecords(
        f"--config_file={SST2}", f"--output_dir={records}", "--num_shards=2",
        f"--params_override=task.init_checkpoint={tiny_bert},task.max_seq_length=16,"
        f"task.train_data.input_path={clean},task.validation_data.input_path={clean}")
    damage(records)


def truncate(records: Path) -> None:
    shard = records / "train-00001-of-00002.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-7])


def write_clean(folder: Path, tiny_bert: Path, damage) -> None:
    (folder / "clean.tsv").write_text(SENTENCES + SENTENCES.split("\n", 1)[1] * 3)
    make_tfrecords(folder, tiny_bert, damage)


LATIN1_SENTENCES = "sentence\tlabel\nun film très bon\t1\n".encode("latin-1")
BAD = [
    # --- TSV -------------------------------------------------------------------------------------
    Bad("tsv_latin1", SST2, ("train.tsv", LATIN1_SENTENCES), not_utf8("train.tsv", 2, "e8")),
    Bad("tsv_stray_byte", SST2, ("train.tsv", SENTENCES.encode() + b"a fine \xff film\t1\n"),
        not_utf8("train.tsv", 6, "ff")),
    Bad("tsv_cp1252_quotes_in_validation", SST2, ("train.tsv", SENTENCES),
        not_utf8("dev.tsv", 2, "93"),
        dev=("dev.tsv", "sentence\tlabel\n\u201cgreat\u201d\t1\n".encode("cp1252"))),
    Bad("tsv_utf16_with_bom", SST2, ("train.tsv", SENTENCES.encode("utf-16")),
        r"'{d}/train\.tsv' is UTF-16 text \(it starts with a UTF-16 byte order mark\); set the data's "
        r"encoding key \(task\.\*_data\.encoding=utf-16\) or save it as UTF-8"),
    Bad("tsv_utf16_without_bom", SST2, ("train.tsv", SENTENCES.encode("utf-16-le")),
        r"'{d}/train\.tsv' is UTF-16 text \(every other byte is zero, without a byte order mark\); set the "
        r"data's encoding key \(task\.\*_data\.encoding=utf-16-le\)"),
    Bad("tsv_nul_byte", SST2, ("train.tsv", SENTENCES + "a go\0od film\t1\n"), nul("train.tsv", 6)),
    Bad("tsv_empty_file", SST2, ("train.tsv", b""), r"input '{d}/train\.tsv' holds no examples"),
    Bad("tsv_header_only", SST2, ("train.tsv", "sentence\tlabel\n"),
        r"input '{d}/train\.tsv' holds no examples"),
    Bad("tsv_duplicate_header", SST2, ("train.tsv", "sentence\tsentence\tlabel\na\tb\t1\n"),
        r"{d}/train\.tsv:1: the header names column 'sentence' twice; rename one of them"),
    Bad("tsv_extra_field", SST2, ("train.tsv", SENTENCES + "a good\tfilm\t1\n"),
        r"{d}/train\.tsv:6: expected 2 TSV fields as in the header, found 3; fix or remove the row"),
    Bad("tsv_other_column_names", SST2, ("train.tsv", "text\tlabel\na good film\t1\n"),
        r"{d}/train\.tsv:2: no column 'sentence' \(columns: text, label\); set task\.text_fields"),
    Bad("tsv_unknown_label", SST2, ("train.tsv", SENTENCES + "a film\tpositive\n"),
        r"{d}/train\.tsv:6: label 'positive' is not in task\.label_list \['0', '1'\]"),
    Bad("tsv_empty_text", SST2, ("train.tsv", SENTENCES + " \t1\n"),
        r"{d}/train\.tsv:6: column 'sentence' is empty; remove the row or fill in the text"),
    Bad("tsv_damaged_gzip", SST2, ("train.tsv.gz", gzip.compress(SENTENCES.encode())[:-12]),
        r"'{d}/train\.tsv\.gz' is a damaged gzip file \(.*\); download or compress it again"),
    Bad("tsv_zip_archive", SST2, ("train.tsv", b"PK\x03\x04" + bytes(40)),
        r"'{d}/train\.tsv' is a zip archive; unzip it and set input_path to the data file inside"),
    Bad("tsv_missing_file", SST2, None, r"input file '{d}/train\.tsv' does not exist",
        settings=("task.train_data.input_path={d}/train.tsv",)),
    Bad("tsv_folder", SST2, None, r"input_path '{d}' is a folder; set it to a file in it",
        settings=("task.train_data.input_path={d}",)),
    Bad("tsv_glob_without_match", SST2, None, r"no input file matches '{d}/train-\*\.tsv'",
        settings=("task.train_data.input_path={d}/train-*.tsv",)),
    Bad("tsv_unknown_encoding", SST2, ("train.tsv", SENTENCES),
        r"unknown text encoding 'latin-9000' in task\.\*_data\.encoding; use e\.g\. utf-8",
        settings=("task.train_data.encoding=latin-9000",)),
    Bad("tsv_unknown_suffix", SST2, ("train.data", SENTENCES),
        r"cannot tell the format of '{d}/train\.data'"),
    # --- CSV -------------------------------------------------------------------------------------
    Bad("csv_missing_field", SST2, ("train.csv", 'sentence,label\n"a good film",1\n"a bad one"\n'),
        r"{d}/train\.csv:3: expected 2 CSV fields as in the header, found 1"),
    Bad("csv_latin1", SST2, ("train.csv", "sentence,label\ncaf\xe9 film,1\n".encode("latin-1")),
        not_utf8("train.csv", 2, "e9")),
    Bad("csv_unclosed_quote", SST2, ("train.csv", 'sentence,label\n"a good film,1\nbad,0\n'),
        r"{d}/train\.csv:\d: expected 2 CSV fields as in the header, found 1"),
    # --- regression scores -----------------------------------------------------------------------
    Bad("stsb_score_is_text", STSB, ("train.tsv", PAIRS + "a\tb\thigh\n"),
        r"{d}/train\.tsv:4: score 'high' is not a finite number; fix the row"),
    Bad("stsb_score_is_nan", STSB, ("train.tsv", PAIRS + "a\tb\tnan\n"),
        r"{d}/train\.tsv:4: score 'nan' is not a finite number; fix the row"),
    # --- JSON Lines ------------------------------------------------------------------------------
    Bad("jsonl_text_is_a_number", SST2, ("train.jsonl", jsonl({"sentence": 3, "label": "1"})),
        r"{d}/train\.jsonl:1: column 'sentence' holds the int 3, not text; check task\.text_fields"),
    Bad("jsonl_text_is_a_list", SST2, ("train.jsonl", jsonl({"sentence": ["a", "b"], "label": "1"})),
        r"{d}/train\.jsonl:1: column 'sentence' holds the list \['a', 'b'\], not text"),
    Bad("jsonl_text_is_null", SST2, ("train.jsonl", jsonl({"sentence": None, "label": "1"})),
        r"{d}/train\.jsonl:1: column 'sentence' is empty"),
    Bad("jsonl_invalid_line", SST2,
        ("train.jsonl", jsonl({"sentence": "a", "label": "1"}) + "{'sentence': 1}\n"),
        r"{d}/train\.jsonl:2: invalid JSON at column 2 \(Expecting property name enclosed in double "
        r"quotes\)"),
    Bad("jsonl_line_is_a_list", SST2, ("train.jsonl", '["a good film", 1]\n'),
        r"{d}/train\.jsonl:1: expected a JSON object; fix the line"),
    Bad("jsonl_deeply_nested", SST2, ("train.jsonl", '{"sentence": ' + "[" * 100_000 + "\n"),
        r"{d}/train\.jsonl:1: JSON nested deeper than the parser's limit of about \d+ levels; "
        r"flatten the data"),
    Bad("jsonl_latin1", SST2,
        ("train.jsonl", '{"sentence": "tr\xe8s bon", "label": "1"}\n'.encode("latin-1")),
        not_utf8("train.jsonl", 1, "e8")),
    Bad("jsonl_label_is_a_list", SST2, ("train.jsonl", jsonl({"sentence": "a film", "label": [1]})),
        r"{d}/train\.jsonl:1: label '\[1\]' is not in task\.label_list"),
    # --- SQuAD JSON ------------------------------------------------------------------------------
    Bad("squad_top_level_number", SQUAD, ("train.json", "3"),
        r"{d}/train\.json: expected a JSON object or list; fix the file"),
    Bad("squad_data_not_a_list", SQUAD, ("train.json", '{"data": 3}'),
        r"{d}/train\.json:data: expected a list of objects as in SQuAD files; fix the file"),
    Bad("squad_truncated", SQUAD, ("train.json", SQUAD_TEXT[:60]),
        r"{d}/train\.json:1:\d+: invalid JSON \(.*\); fix the file"),
    Bad("squad_deeply_nested", SQUAD, ("train.json", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        r"{d}/train\.json: JSON nested deeper than the parser's limit"),
    Bad("squad_question_is_a_number", SQUAD, ("train.json", json.dumps(squad_document(question=5))),
        r"{d}/train\.json:data\[0\]\.paragraphs\[0\]\.qas\[0\]: question 'q1': 'question' holds the int 5, "
        r"not text; write it as a string"),
    Bad("squad_answer_start_is_text", SQUAD, ("train.json", json.dumps(squad_document(answer_start="0"))),
        r"{d}/train\.json:data\[0\]\.paragraphs\[0\]\.qas\[0\]: question 'q1' has a malformed answer"),
    Bad("squad_answer_outside_the_context", SQUAD,
        ("train.json", json.dumps(squad_document(answer_start=40))),
        r"'{d}/train\.json' has no question with a usable answer; fix the data"),
    Bad("squad_nul_in_a_string", SQUAD, ("train.json", SQUAD_TEXT.replace("Ann wrote", "Ann\0wrote")),
        r"{d}/train\.json:1:\d+: invalid JSON \(Invalid control character at"),
    # --- CoNLL -----------------------------------------------------------------------------------
    Bad("conll_ragged_columns", CONLL, ("train.txt", CONLL_TEXT + "Smith NNP I-PER\n"),
        r"{d}/train\.txt:7: expected 4 columns as on the first token line, found 3"),
    Bad("conll_latin1", CONLL,
        ("train.txt", CONLL_TEXT.encode() + "Müller NNP B-NP B-PER\n".encode("latin-1")),
        not_utf8("train.txt", 7, "fc")),
    Bad("conll_nul_byte", CONLL, ("train.txt", CONLL_TEXT + "Sm\0ith NNP B-NP I-PER\n"), nul("train.txt", 7)),
    Bad("conll_only_document_starts", CONLL, ("train.txt", "-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n"),
        r"input '{d}/train\.txt' holds no examples"),
    Bad("conll_unknown_tag", CONLL, ("train.txt", CONLL_TEXT + "Paris NNP B-NP B-CITY\n"),
        r"{d}/train\.txt:6: tag 'B-CITY' is not in task\.label_list \[.*\]; add it or fix the data"),
    # --- SemEval-2010 Task 8 ---------------------------------------------------------------------
    Bad("semeval_latin1", SEMEVAL,
        ("train.txt", SEMEVAL_TEXT.encode() + '3\t"A <e1>caf\xe9</e1> <e2>x</e2>"\n'.encode("latin-1")),
        not_utf8("train.txt", 9, "e9")),
    Bad("semeval_without_tab", SEMEVAL,
        ("train.txt", '1 "The <e1>pen</e1> is in the <e2>box</e2>."\nOther\n'),
        r"{d}/train\.txt:1: expected 'id<TAB>\"sentence\"' as in SemEval-2010 Task 8 files"),
    # --- TFRecord --------------------------------------------------------------------------------
    Bad("tfrecord_truncated", SST2, None,
        r"'{d}/records/train-00001-of-00002\.tfrecord' has \d+ bytes, but '{d}/records/metadata\.json' says "
        r"\d+ were written \(a truncated or partial copy\?\)",
        settings=("task.train_data.input_path={d}/records/train-*.tfrecord",),
        prepare=lambda folder, tiny: write_clean(folder, tiny, truncate)),
    Bad("tfrecord_without_metadata", SST2, None,
        r"'{d}/records/metadata\.json' does not exist; TFRecord input needs the metadata\.json",
        settings=("task.train_data.input_path={d}/records/train-*.tfrecord",),
        prepare=lambda folder, tiny: write_clean(folder, tiny, lambda r: (r / "metadata.json").unlink())),
    Bad("tfrecord_foreign_metadata", SST2, None,
        r"'{d}/records/metadata\.json' is not a tfft TFRecord metadata file; recreate it",
        settings=("task.train_data.input_path={d}/records/train-*.tfrecord",),
        prepare=lambda folder, tiny: write_clean(
            folder, tiny, lambda records: (records / "metadata.json").write_text("[1]"))),
    # --- configs and overrides -------------------------------------------------------------------
    Bad("config_not_a_mapping", SST2, ("train.tsv", SENTENCES),
        r"config file '{d}/extra\.yaml' holds a list, not a mapping of sections",
        config_text=b"- task\n- trainer\n"),
    Bad("config_latin1", SST2, ("train.tsv", SENTENCES),
        r"config file '{d}/extra\.yaml' is not UTF-8 text \(it holds the byte b'\\xe9'\); save it as UTF-8",
        config_text="# café\ntrainer:\n  epochs: 1\n".encode("latin-1")),
    Bad("config_duplicate_key", SST2, ("train.tsv", SENTENCES),
        r"config file '{d}/extra\.yaml:3' is not valid YAML \(key 'epochs' appears twice in one mapping\)",
        config_text=b"trainer:\n  epochs: 1\n  epochs: 2\n"),
    Bad("config_bad_yaml", SST2, ("train.tsv", SENTENCES),
        r"config file '{d}/extra\.yaml:2' is not valid YAML", config_text=b"trainer: [\n"),
    Bad("config_section_not_a_mapping", SST2, ("train.tsv", SENTENCES),
        r"config section 'trainer' must be a mapping", config_text=b"trainer: 3\n"),
    Bad("override_without_equals", SST2, ("train.tsv", SENTENCES),
        r"--params_override entry 'trainer\.epochs' is not key=value", settings=("trainer.epochs",)),
    Bad("override_text_for_a_number", SST2, ("train.tsv", SENTENCES),
        r"config key 'trainer\.epochs' must be int, got 'three'", settings=("trainer.epochs=three",)),
    Bad("override_unknown_key", SST2, ("train.tsv", SENTENCES),
        r"unknown config key 'trainer\.epoch'; known keys here: ", settings=("trainer.epoch=3",)),
    Bad("override_unclosed_bracket", SST2, ("train.tsv", SENTENCES),
        r"--params_override has an unclosed bracket", settings=("task.label_list=[0,1",)),
]


def write(path: Path, content: bytes | str) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


EARLIER_RUN = {"params.yaml": b"task:\n  type: sentence_classification\n",
               "eval_results.json": b'{"accuracy": 0.9}'}


def model_dir_files(model_dir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(model_dir)): path.read_bytes()
            for path in model_dir.rglob("*") if path.is_file()}


@pytest.mark.parametrize("case", BAD, ids=[case.name for case in BAD])
def test_bad_input_ends_in_one_line_and_changes_nothing(case: Bad, tiny_bert, tmp_path):
    folder = tmp_path
    model_dir = folder / "model"
    model_dir.mkdir()
    for name, content in EARLIER_RUN.items():
        write(model_dir / name, content)
    if case.prepare:
        case.prepare(folder, tiny_bert)
    settings = [f"task.init_checkpoint={tiny_bert}", "task.max_seq_length=16", "trainer.epochs=1"]
    if case.train:
        write(folder / case.train[0], case.train[1])
        settings.append(f"task.train_data.input_path={folder / case.train[0]}")
    dev = case.dev or CLEAN_DEV[case.config]
    write(folder / dev[0], dev[1])
    settings.append(f"task.validation_data.input_path={folder / dev[0]}")
    settings += [setting.replace("{d}", str(folder)) for setting in case.settings]
    configs = [f"--config_file={REPO / case.config}"]
    if case.config_text is not None:
        write(folder / "extra.yaml", case.config_text)
        configs.append(f"--config_file={folder / 'extra.yaml'}")
    before = model_dir_files(model_dir)

    run = run_train(*configs, f"--model_dir={model_dir}", f"--params_override={','.join(settings)}",
                    check=False)

    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]
    expected = "tfft-train: error: " + case.error.replace("{d}", re.escape(str(folder)))
    assert re.match(expected, line), f"\n{line}\ndoes not match\n{expected}"
    assert model_dir_files(model_dir) == before


def test_the_fuzzer_covers_at_least_40_cases_of_every_reader():
    names = [case.name for case in BAD]
    assert len(names) == len(set(names)) and len(names) >= 40
    for prefix in ("tsv", "csv", "jsonl", "squad", "conll", "semeval", "tfrecord", "config", "override"):
        assert any(name.startswith(prefix + "_") for name in names), prefix


# --- messy but valid: read as the clean file is ------------------------------------------------------


def examples(config_file: str, path: Path, *settings: str) -> list:
    config = build_config([str(REPO / config_file)], [f"task.train_data.input_path={path}", *settings])
    task = get_task(config.task)
    return [dataclasses.replace(example, where="") if hasattr(example, "where") else example
            for example in task.read_examples(config.task.train_data)]


GOOD = [
    ("tsv_crlf", SST2, "train.tsv", SENTENCES.replace("\n", "\r\n").encode(), ()),
    ("tsv_byte_order_mark", SST2, "train.tsv", b"\xef\xbb\xbf" + SENTENCES.encode(), ()),
    ("tsv_latin1_declared", SST2, "train.tsv", SENTENCES.encode("latin-1"),
     ("task.train_data.encoding=latin-1",)),
    ("tsv_utf16_declared", SST2, "train.tsv", SENTENCES.encode("utf-16"),
     ("task.train_data.encoding=utf-16",)),
    ("tsv_labels_with_stray_spaces", SST2, "train.tsv", SENTENCES.replace("\t1", "\t 1 ").encode(), ()),
    ("tsv_gzip", SST2, "train.tsv.gz", gzip.compress(SENTENCES.encode()), ()),
    ("csv_crlf_and_quoted_fields", SST2, "train.csv",
     'sentence,label\r\n"a good film",1\r\nan awful plot,0\r\n"the best story, très bien",1\r\n'
     "boring acting,0\r\n".encode(), ()),
    ("jsonl_crlf", SST2, "train.jsonl", jsonl(*[{"sentence": text, "label": label} for text, label in (
        line.split("\t") for line in SENTENCES.splitlines()[1:])]).replace("\n", "\r\n").encode(), ()),
    ("stsb_scores_as_json_strings", STSB, "train.jsonl", jsonl(
        {"sentence1": "a man plays", "sentence2": "a man is playing", "score": "4.5"},
        {"sentence1": "a cat", "sentence2": "the sky", "score": "0.2"}).encode(), ()),
    ("conll_crlf", CONLL, "train.txt", CONLL_TEXT.replace("\n", "\r\n").encode(), ()),
]
CLEAN = {SST2: ("train.tsv", SENTENCES), STSB: ("train.tsv", PAIRS), CONLL: ("train.txt", CONLL_TEXT)}


@pytest.mark.parametrize(("name", "config", "file", "content", "settings"), GOOD,
                         ids=[case[0] for case in GOOD])
def test_messy_but_valid_input_reads_as_the_clean_file(name, config, file, content, settings, tmp_path):
    clean, messy = tmp_path / CLEAN[config][0], tmp_path / "messy" / file
    write(clean, CLEAN[config][1])
    messy.parent.mkdir()
    write(messy, content)
    assert examples(config, messy, *settings) == examples(config, clean)


def test_a_10_mb_field_is_read_whole(tmp_path):
    long_text = "a good film " * 900_000
    path = tmp_path / "train.csv"
    path.write_text(f'sentence,label\n"{long_text}",1\nan awful plot,0\n')
    [first, second] = examples(SST2, path)
    assert len(first.texts[0]) == len(long_text) > 10_000_000 and second.label == 0


def test_damaged_tfrecord_files_without_recorded_sizes_stop_training_in_one_line(tiny_bert, tmp_path):
    """Files written before their sizes were recorded: the damage shows while training, as one line."""

    def truncate_unrecorded(records: Path) -> None:
        truncate(records)
        metadata = json.loads((records / "metadata.json").read_text())
        del metadata["splits"]["train"]["file_bytes"]
        (records / "metadata.json").write_text(json.dumps(metadata))

    write_clean(tmp_path, tiny_bert, truncate_unrecorded)
    run = run_train(
        f"--config_file={REPO / SST2}", f"--model_dir={tmp_path / 'model'}", "--mode=train",
        f"--params_override=task.init_checkpoint={tiny_bert},task.max_seq_length=16,trainer.epochs=1,"
        f"task.train_data.input_path={tmp_path}/records/train-*.tfrecord,trainer.train_batch_size=4",
        check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert re.match(r"tfft-train: error: cannot read the training data \(.*truncated.*\); recreate its "
                    r"TFRecord files with tools/create_tfrecords\.py", line), line
