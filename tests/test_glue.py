"""configs/glue: every GLUE task reads its TFDS version and its TSV files as distributed.

The GLUE TSV layouts are written here as the GLUE download script leaves them (header-less
CoLA, MRPC's byte order mark and ``#1 String`` columns, quotes inside QQP/MNLI fields, STS-B's
``score``, word labels in QNLI/RTE/MNLI); the TFDS fields come from TFDS' own feature specs
(``tfds.testing.mock_data``). Only the input paths change between the two.
"""

from __future__ import annotations

import json
import random

import pytest
from conftest import REPO, WORDS, run_train

from tfft.config import build_config
from tfft.errors import TfftError
from tfft.tasks import get_task

GLUE = sorted(path.stem for path in (REPO / "configs" / "glue").glob("*.yaml"))
#: What each GLUE config's validation metrics must hold (GLUE's reported metrics) and its main one.
REPORTED = {
    "cola": (["matthews_corrcoef"], "matthews_corrcoef"), "sst2": (["accuracy"], "accuracy"),
    "mrpc": (["f1", "accuracy"], "f1"), "stsb": (["pearson", "spearman"], "pearson"),
    "qqp": (["f1", "accuracy"], "f1"), "mnli": (["accuracy", "mismatched_accuracy"], "accuracy"),
    "qnli": (["accuracy"], "accuracy"), "rte": (["accuracy"], "accuracy"), "wnli": (["accuracy"], "accuracy"),
}
#: Labels as the GLUE TSV files write them, in the configs' label order.
TSV_LABELS = {"cola": ["0", "1"], "sst2": ["0", "1"], "mrpc": ["0", "1"], "qqp": ["0", "1"],
              "mnli": ["entailment", "neutral", "contradiction"], "qnli": ["entailment", "not_entailment"],
              "rte": ["entailment", "not_entailment"], "wnli": ["0", "1"]}


def sentence(rng: random.Random, quote: bool = False) -> str:
    words = rng.choices(WORDS, k=rng.randint(3, 9))
    return ('"' + " ".join(words[:2]) + '" ' + " ".join(words[2:])) if quote else " ".join(words)


def glue_tsv(task: str, rows: int, seed: int = 0) -> tuple[str, list[tuple[tuple[str, ...], object]]]:
    """A GLUE TSV file's text for ``task`` and the (texts, label) of each row."""
    rng = random.Random(seed)
    lines, expected = [], []
    header = {
        "sst2": "sentence\tlabel", "mrpc": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        "stsb": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        "qqp": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "mnli": "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
        "qnli": "index\tquestion\tsentence\tlabel", "rte": "index\tsentence1\tsentence2\tlabel",
        "wnli": "index\tsentence1\tsentence2\tlabel",
    }.get(task)  # CoLA's files have none.
    if header:
        lines.append(header)
    for index in range(rows):
        first, second = sentence(rng, quote=task in ("qqp", "mnli")), sentence(rng)
        if task == "stsb":
            label = round(rng.uniform(0, 5), 3)
            lines.append(f"{index}\tmain-captions\tMSRvid\t2012test\t{index:04d}\tnone\tnone\t{first}\t{second}"
                         f"\t{label:.3f}")
            expected.append(((first, second), label))
            continue
        label = rng.choice(TSV_LABELS[task])
        cells = {
            "cola": ["gj04", label, "" if label == "1" else "*", first],
            "sst2": [first, label],
            "mrpc": [label, str(1000 + index), str(2000 + index), first, second],
            "qqp": [str(index), str(2 * index), str(2 * index + 1), first, second, label],
            "mnli": [str(index), "1", f"{index}e", "fiction", f"( {first} )", f"( {second} )",
                     f"(ROOT {first})", f"(ROOT {second})", first, second, label, label],
        }.get(task, [str(index), first, second, label])
        lines.append("\t".join(cells))
        texts = (first,) if task in ("cola", "sst2") else (first, second)
        expected.append((texts, TSV_LABELS[task].index(label)))
    newline = "\r\n" if task == "mrpc" else "\n"  # MRPC's files come with Windows line ends.
    return newline.join(lines) + newline, expected


def tsv_config(task: str, train, dev, *overrides: str):
    """configs/glue/TASK.yaml pointed at local TSV files: the two input paths and nothing else."""
    settings = [f"task.train_data.input_path={train},task.validation_data.input_path={dev}", *overrides]
    return build_config([str(REPO / "configs" / "glue" / f"{task}.yaml")], settings)


def test_every_glue_task_has_a_config():
    assert GLUE == sorted(REPORTED)


@pytest.mark.parametrize("task", GLUE)
def test_glue_tsv_files_read_as_distributed(task, tmp_path):
    text, expected = glue_tsv(task, 12)
    path = tmp_path / "dev.tsv"
    path.write_bytes(text.encode())
    config = tsv_config(task, path, path)
    examples = get_task(config.task).read_examples(config.task.validation_data)
    assert [(example.texts, example.label) for example in examples] == expected


@pytest.mark.parametrize("task", GLUE)
def test_glue_tfds_fields_are_the_configs(task):
    """The default TFDS inputs (TFDS' own feature spec, random values) read with each config."""
    import tensorflow_datasets as tfds

    config = build_config([str(REPO / "configs" / "glue" / f"{task}.yaml")])
    extra = config.task.extra_validation_sets().values()
    splits = [config.task.train_data, config.task.validation_data, *extra]
    assert all(data.input_path.startswith(f"tfds:glue/{task}/") for data in splits)
    with tfds.testing.mock_data(num_examples=4):
        for data in splits:
            examples = get_task(config.task).read_examples(data)
            assert len(examples) == 4 and all(all(example.texts) for example in examples)


@pytest.mark.parametrize("task", GLUE)
def test_glue_config_trains_on_tsv_files_and_reports_glues_metrics(task, tiny_bert, tmp_path):
    """A synthetic stand-in for each GLUE task: one short run from its config and TSV files."""
    paths = {}
    for split, seed in (("train", 1), ("dev", 2), ("dev_mismatched", 3)):
        paths[split] = tmp_path / f"{split}.tsv"
        paths[split].write_bytes(glue_tsv(task, 24, seed)[0].encode())
    extra = f"task.extra_validation_data.mismatched.input_path={paths['dev_mismatched']}"
    extra = extra if task == "mnli" else ""
    run = run_train(
        *[f"--config_file=configs/glue/{task}.yaml"], f"--model_dir={tmp_path / 'run'}",
        f"--params_override=task.train_data.input_path={paths['train']},"
        f"task.validation_data.input_path={paths['dev']},task.init_checkpoint={tiny_bert},"
        "task.max_seq_length=32,trainer.epochs=1,trainer.train_batch_size=8,trainer.eval_batch_size=8",
        *[f"--params_override={extra}"] * bool(extra),
    )
    metrics, main = REPORTED[task]
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert all(isinstance(results[name], float) for name in metrics), results
    assert get_task(build_config([str(REPO / "configs" / "glue" / f"{task}.yaml")]).task).main_metric == main
    assert run.results[main] == results[main]
    if task == "mnli":
        assert results["num_examples"] == results["mismatched_num_examples"] == 24


def test_column_names_add_names_and_refuse_a_clash(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                    "0\tg\tf\t2012\t0\tnone\tnone\ta man\ta dog\t3.500\n")
    config = tsv_config("stsb", path, path)
    (example,) = get_task(config.task).read_examples(config.task.validation_data)
    assert example.label == pytest.approx(3.5)
    # Commands written for the TSV's own name keep working: the column keeps it too.
    config = tsv_config("stsb", path, path, "task.label_field=score")
    assert get_task(config.task).read_examples(config.task.validation_data)[0].label == pytest.approx(3.5)
    config = tsv_config("stsb", path, path, "task.column_names={sentence1: sentence2}")
    assert config.task.column_names == {"score": "label", "sentence1": "sentence2"}  # Merged.
    with pytest.raises(TfftError, match=rf"^{path}:2: task.column_names names column 'sentence1' "
                                        r"'sentence2', which the data already has; drop 'sentence1' from "
                                        r"task.column_names$"):
        get_task(config.task).read_examples(config.task.validation_data)


def test_extra_validation_sets_are_checked_with_the_config(tmp_path):
    config = tsv_config("mnli", "a.tsv", "b.tsv", "task.extra_validation_data.mismatched.max_examples=5")
    (mismatched,) = config.task.extra_validation_sets().values()
    assert (mismatched.input_path, mismatched.max_examples) == ("tfds:glue/mnli/validation_mismatched", 5)
    config = tsv_config("mnli", "a.tsv", "b.tsv", "task.extra_validation_data.other.input_path=c.tsv")
    assert list(config.task.extra_validation_sets()) == ["mismatched", "other"]
    config = tsv_config("mnli", "a.tsv", "b.tsv", "task.extra_validation_data.mismatched=null")
    assert config.task.extra_validation_data == {}
    config = tsv_config("mnli", "a.tsv", "b.tsv", "task.extra_validation_data={}")
    assert config.task.extra_validation_data == {}
    with pytest.raises(TfftError, match=r"^unknown config key 'task.extra_validation_data.mismatched.path'; "
                                        r"known keys here: columns, encoding, format, input_path, "
                                        r"max_examples$"):
        tsv_config("mnli", "a.tsv", "b.tsv", "task.extra_validation_data.mismatched.path=x.tsv")
    with pytest.raises(TfftError, match=r"^config key 'task.extra_validation_data.mis-matched': name the "
                                        r"validation set with letters, digits and underscores"):
        build_config(overrides={"task": {"extra_validation_data": {"mis-matched": {"input_path": "x.tsv"}}}})


def test_eval_mode_reports_the_extra_validation_sets(tiny_bert, tmp_path):
    paths = {}
    for split, seed in (("train", 1), ("matched", 2), ("mismatched", 3)):
        paths[split] = tmp_path / f"{split}.tsv"
        paths[split].write_text(glue_tsv("mnli", 16 if split != "mismatched" else 8, seed)[0])
    settings = (f"--params_override=task.train_data.input_path={paths['train']},"
                f"task.validation_data.input_path={paths['matched']},task.init_checkpoint={tiny_bert},"
                "task.max_seq_length=32,trainer.epochs=1,trainer.train_batch_size=8,task.extra_validation_data={}")
    run_train("--config_file=configs/glue/mnli.yaml", f"--model_dir={tmp_path / 'run'}", settings,
              "--mode=train")
    run = run_train(f"--model_dir={tmp_path / 'run'}", "--mode=eval",
                    f"--params_override=task.extra_validation_data.other.input_path={paths['mismatched']}")
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["other_num_examples"] == 8
    assert run.results["num_examples"] == 16 and run.results["other_num_examples"] == 8
    alone = run_train(f"--model_dir={tmp_path / 'run'}", "--mode=eval",
                      f"--params_override=task.validation_data.input_path={paths['mismatched']}")
    assert run.results["other_accuracy"] == alone.results["accuracy"]  # as when it is the validation set
