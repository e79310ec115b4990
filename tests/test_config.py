"""Experiment config: defaults, YAML merging, dotted overrides and their errors."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import REPO

from tfft.config import (
    DataConfig,
    ExperimentConfig,
    build_config,
    load_yaml,
    parse_overrides,
    save_yaml,
    task_config,
    to_commented_yaml,
    to_dict,
)
from tfft.errors import TfftError


def write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def test_defaults():
    config = build_config()
    assert config == ExperimentConfig()
    assert config.task.type == "sentence_classification"
    assert config.task.max_seq_length == 128
    assert config.task.num_labels == 2
    assert config.task.text_fields == ["sentence"]
    assert config.task.label_field == "label"
    assert config.task.label_list == []
    assert config.task.train_data == DataConfig(input_path="", max_examples=0, format="auto")
    assert config.trainer.train_batch_size == 32
    assert config.trainer.learning_rate == pytest.approx(2e-5)
    assert config.trainer.warmup_fraction == pytest.approx(0.1)
    assert config.trainer.weight_decay == pytest.approx(0.01)
    assert config.trainer.length_grouping is True and config.trainer.static_shapes is False
    assert config.runtime.strategy == "default"
    assert config.runtime.mixed_precision == "float32"
    assert config.runtime.seed == 42


def test_list_defaults_are_not_shared_between_configs():
    first, second = build_config(), build_config()
    first.task.text_fields.append("sentence2")
    first.task.label_list.append("x")
    assert second.task.text_fields == ["sentence"]
    assert second.task.label_list == []


def test_yaml_files_merge_in_order_later_wins(tmp_path):
    base = write(tmp_path / "base.yaml", """
        task:
          max_seq_length: 64
          num_labels: 3
          train_data:
            input_path: /data/train.tsv
        trainer:
          epochs: 5
          learning_rate: 3.0e-5
    """)
    override = write(tmp_path / "override.yaml", """
        task:
          max_seq_length: 256
          train_data:
            max_examples: 10
        runtime:
          seed: 7
    """)
    config = build_config([base, override])
    assert config.task.max_seq_length == 256  # later file wins
    assert config.task.num_labels == 3  # kept from the first file
    assert config.task.train_data.input_path == "/data/train.tsv"
    assert config.task.train_data.max_examples == 10  # nested sections merge key by key
    assert config.trainer.epochs == 5
    assert config.trainer.learning_rate == pytest.approx(3e-5)
    assert config.runtime.seed == 7
    # Order matters: the other way round the first file's value wins.
    assert build_config([override, base]).task.max_seq_length == 64


def test_overrides_win_over_files(tmp_path):
    base = write(tmp_path / "base.yaml", "trainer:\n  epochs: 5\n  eval_batch_size: 8\n")
    config = build_config([base], "trainer.epochs=2")
    assert config.trainer.epochs == 2
    assert config.trainer.eval_batch_size == 8


def test_empty_yaml_file_is_defaults(tmp_path):
    empty = write(tmp_path / "empty.yaml", "# nothing here\n")
    assert load_yaml(empty) == {}
    assert build_config([empty]) == ExperimentConfig()


def test_parse_overrides_nests_dotted_keys_and_types_values():
    parsed = parse_overrides(
        "trainer.epochs=2,task.max_seq_length=64,trainer.jit_compile=true,"
        "task.train_data.input_path=/x/y.tsv,trainer.learning_rate=0.5"
    )
    assert parsed == {
        "trainer": {"epochs": 2, "jit_compile": True, "learning_rate": 0.5},
        "task": {"max_seq_length": 64, "train_data": {"input_path": "/x/y.tsv"}},
    }
    assert isinstance(parsed["trainer"]["epochs"], int)
    assert parsed["trainer"]["jit_compile"] is True


def test_parse_overrides_keeps_commas_inside_brackets_and_quotes():
    parsed = parse_overrides(
        "task.text_fields=[sentence1, sentence2],task.label_list=['a,b', \"c,d\", e],"
        "task.tokenizer='x,y',trainer.epochs=1"
    )
    assert parsed == {
        "task": {
            "text_fields": ["sentence1", "sentence2"],
            "label_list": ["a,b", "c,d", "e"],
            "tokenizer": "x,y",
        },
        "trainer": {"epochs": 1},
    }


def test_parse_overrides_strips_spaces_skips_empty_entries_and_allows_empty_values():
    parsed = parse_overrides(" trainer.epochs = 4 ,, task.init_checkpoint= ,")
    assert parsed == {"trainer": {"epochs": 4}, "task": {"init_checkpoint": ""}}
    assert parse_overrides("") == {}


def test_parse_overrides_splits_only_on_first_equals():
    assert parse_overrides("task.tokenizer=a=b") == {"task": {"tokenizer": "a=b"}}


def test_apostrophe_inside_unquoted_value_does_not_swallow_later_entries():
    parsed = parse_overrides("task.init_checkpoint=/models/bert's-model,trainer.epochs=2")
    assert parsed == {"task": {"init_checkpoint": "/models/bert's-model"}, "trainer": {"epochs": 2}}


def test_exponent_without_dot_is_coerced_to_float():
    # YAML 1.1 reads "5e-5" as a string; a float field must still accept it.
    assert parse_overrides("trainer.learning_rate=5e-5") == {"trainer": {"learning_rate": "5e-5"}}
    config = build_config(overrides="trainer.learning_rate=5e-5,trainer.adam_epsilon=1e-6")
    assert isinstance(config.trainer.learning_rate, float)
    assert config.trainer.learning_rate == pytest.approx(5e-5)
    assert config.trainer.adam_epsilon == pytest.approx(1e-6)


def test_exponent_in_yaml_file_is_coerced_to_float(tmp_path):
    path = write(tmp_path / "lr.yaml", "trainer:\n  learning_rate: 1e-4\n")
    assert build_config([path]).trainer.learning_rate == pytest.approx(1e-4)


def test_int_is_accepted_for_float_fields():
    config = build_config(overrides="trainer.learning_rate=1,trainer.max_grad_norm=0")
    assert config.trainer.learning_rate == 1.0 and isinstance(config.trainer.learning_rate, float)
    assert config.trainer.max_grad_norm == 0.0 and isinstance(config.trainer.max_grad_norm, float)


def test_dict_overrides_are_accepted():
    config = build_config(overrides={"task": {"label_list": ["neg", "pos"]}, "runtime": {"tpu": "local"}})
    assert config.task.label_list == ["neg", "pos"]
    assert config.runtime.tpu == "local"


def test_unknown_key_names_full_dotted_key():
    with pytest.raises(TfftError, match=r"unknown config key 'task\.train_data\.inputpath'"):
        build_config(overrides="task.train_data.inputpath=x.tsv")
    with pytest.raises(TfftError, match=r"unknown config key 'trainer\.epoch'.*epochs"):
        build_config(overrides="trainer.epoch=3")
    with pytest.raises(TfftError, match=r"unknown config key 'model'"):
        build_config(overrides="model.size=3")


def test_unknown_key_in_yaml_file(tmp_path):
    path = write(tmp_path / "bad.yaml", "runtime:\n  precision: float16\n")
    with pytest.raises(TfftError, match=r"unknown config key 'runtime\.precision'"):
        build_config([path])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=two", r"config key 'trainer\.epochs' must be int, got 'two'"),
        ("trainer.epochs=2.5", r"config key 'trainer\.epochs' must be int, got 2\.5"),
        ("trainer.epochs=true", r"config key 'trainer\.epochs' must be int, got True"),
        ("trainer.learning_rate=fast", r"config key 'trainer\.learning_rate' must be float, got 'fast'"),
        ("trainer.jit_compile=1", r"config key 'trainer\.jit_compile' must be bool, got 1"),
        ("task.text_fields=sentence", r"config key 'task\.text_fields' must be list, got 'sentence'"),
    ],
)
def test_wrong_type_is_rejected(override, message):
    with pytest.raises(TfftError, match=message):
        build_config(overrides=override)


def test_section_must_be_a_mapping():
    with pytest.raises(TfftError, match=r"config section 'task\.train_data' must be a mapping"):
        build_config(overrides="task.train_data=x.tsv")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("runtime.strategy=gpu", r"config key 'runtime\.strategy' has unknown value 'gpu'; choose one of "
                                 r"default, one_device, mirrored, multi_worker, tpu"),
        ("runtime.mixed_precision=float16", r"config key 'runtime\.mixed_precision' has unknown value "
                                            r"'float16'"),
    ],
)
def test_value_outside_choices_is_rejected(override, message):
    with pytest.raises(TfftError, match=message):
        build_config(overrides=override)


def test_valid_choice_is_accepted():
    config = build_config(overrides="runtime.strategy=mirrored,task.train_data.format=jsonl")
    assert config.runtime.strategy == "mirrored"
    assert config.task.train_data.format == "jsonl"


def test_entry_without_equals_is_rejected():
    with pytest.raises(TfftError, match=r"--params_override entry 'trainer\.epochs' is not key=value"):
        parse_overrides("task.max_seq_length=64, trainer.epochs ")


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(TfftError, match=rf"config file '{re.escape(missing)}' does not exist"):
        build_config([missing])


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path / "broken.yaml", "task:\n  type: x\n  bad: : y\ntrainer:\n  epochs: 1\n")
    with pytest.raises(TfftError, match=rf"config file '{re.escape(path)}:3' is not valid YAML"):
        build_config([path])


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(TfftError, match=r"config file '.*list\.yaml' holds a list, not a mapping of "):
        build_config([path])


def test_save_yaml_round_trips(tmp_path):
    config = build_config(overrides=(
        "task.type=sentence_classification,task.text_fields=[sentence1, sentence2],task.label_field=score,"
        "task.label_list=['a,b', c],task.num_labels=2,trainer.learning_rate=5e-5,trainer.adam_epsilon=1e-6,"
        "trainer.jit_compile=true,runtime.strategy=tpu,runtime.tpu=local,"
        "task.predict_data.input_path=tfds:glue/stsb/test,task.predict_data.max_examples=7"
    ))
    saved = tmp_path / "params.yaml"
    save_yaml(config, saved)
    reloaded = build_config([str(saved)])
    assert reloaded == config
    assert to_dict(reloaded) == yaml.safe_load(saved.read_text())
    # The defaults round-trip too (floats like 1e-08 must come back as floats).
    save_yaml(ExperimentConfig(), saved)
    assert build_config([str(saved)]) == ExperimentConfig()


def test_unclosed_quote_is_an_error():
    with pytest.raises(TfftError, match="unclosed '"):
        parse_overrides("task.init_checkpoint='/models/bert,trainer.epochs=2")


def test_several_override_strings_apply_in_order():
    config = build_config([], ["trainer.epochs=2,trainer.learning_rate=1e-4", "trainer.epochs=5"])
    assert config.trainer.epochs == 5 and config.trainer.learning_rate == 1e-4


# --- task sections ----------------------------------------------------------------------------------

#: A token_classification params.yaml as tfft wrote it before tasks had their own sections.
LEGACY_PARAMS = """
task:
  type: token_classification
  init_checkpoint: /models/bert
  tokenizer: ''
  max_seq_length: 64
  num_labels: 3
  label_list: [O, B-PER, I-PER]
  text_fields: [tokens]
  label_field: ner
  tag_column: -1
  tag_scheme: iob2
  label_all_subwords: false
  doc_stride: 128
  max_query_length: 64
  n_best_size: 20
  max_answer_length: 30
  version_2_with_negative: false
  null_score_diff_threshold: 0.0
  main_metric: ''
  hidden_dropout: -1.0
  attention_dropout: -1.0
  classifier_dropout: -1.0
  train_data: {input_path: train.conll, max_examples: 0, format: conll}
  validation_data: {input_path: '', max_examples: 0, format: auto}
  predict_data: {input_path: '', max_examples: 0, format: auto}
trainer:
  epochs: 2
"""


def test_task_type_picks_its_config_section():
    config = build_config(overrides="task.type=question_answering,task.doc_stride=64")
    assert type(config.task).__name__ == "QuestionAnsweringConfig"
    assert config.task.doc_stride == 64 and config.task.max_query_length == 64
    assert not hasattr(config.task, "label_list")
    assert not hasattr(build_config().task, "doc_stride")
    # The type may come after the task's keys, in a later file or override.
    later_type = build_config(overrides=["task.doc_stride=32", "task.type=question_answering"])
    assert later_type.task.doc_stride == 32


def test_key_of_another_task_is_an_error_naming_its_task(tmp_path):
    with pytest.raises(TfftError, match=r"^config key 'task\.doc_stride' belongs to question_answering, "
                                        r"not to task\.type 'sentence_classification'; remove it"):
        build_config(overrides="task.doc_stride=128")
    path = write(tmp_path / "qa_keys.yaml", "task:\n  type: sentence_regression\n  n_best_size: 5\n")
    with pytest.raises(TfftError, match=r"'task\.n_best_size' belongs to question_answering"):
        build_config([path])
    with pytest.raises(TfftError, match=r"unknown config key 'task\.stride'; known keys here: "):
        build_config(overrides="task.type=question_answering,task.stride=3")


def test_params_yaml_of_older_versions_still_loads(tmp_path):
    path = write(tmp_path / "params.yaml", LEGACY_PARAMS)
    config = build_config([path])
    assert type(config.task).__name__ == "TokenClassificationConfig"
    assert config.task.label_list == ["O", "B-PER", "I-PER"] and config.task.label_field == "ner"
    assert config.task.train_data.format == "conll" and config.trainer.epochs == 2
    assert not hasattr(config.task, "doc_stride")
    # Another task's key with a value of its own is still an error.
    changed = write(tmp_path / "changed.yaml", LEGACY_PARAMS.replace("doc_stride: 128", "doc_stride: 64"))
    with pytest.raises(TfftError, match=r"'task\.doc_stride' belongs to question_answering"):
        build_config([changed])


def test_task_config_builds_a_checked_section():
    section = task_config("question_answering", max_seq_length=256, doc_stride=32)
    assert (section.type, section.max_seq_length, section.doc_stride) == ("question_answering", 256, 32)
    with pytest.raises(TfftError, match=r"'task\.doc_stride' must be int, got 'x'"):
        task_config("question_answering", doc_stride="x")


def test_config_finds_the_tasks_without_importing_them():
    code = ("import sys; from tfft.config import build_config; "
            "config = build_config(overrides='task.type=token_classification,task.tag_scheme=bioes'); "
            "print(type(config.task).__name__, config.task.tag_scheme)")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert process.stdout.split() == ["TokenClassificationConfig", "bioes"]


# --- to_commented_yaml (tfft-train --print_config) ---------------------------------------------


@pytest.mark.parametrize(("files", "overrides"), [
    (["configs/glue/sst2.yaml", "configs/quickstart.yaml"],
     "task.label_list=['a,b', 'it''s: #1'],trainer.adam_epsilon=1e-6,runtime.strategy=tpu,runtime.tpu=local"),
    (["configs/squad/squad_v2.yaml"], "task.doc_stride=64,trainer.profile_steps=[2, 4]"),
    (["configs/ner/conll2003.yaml"], {"task": {"train_data": {"input_path": "a\nb", "columns": ["w", "t"]}}}),
    (["configs/multiple_choice/race.yaml"], ""),
])
def test_commented_yaml_loads_back_to_the_same_config(tmp_path, files, overrides):
    config = build_config(files, overrides)
    text = to_commented_yaml(config, "first line\nsecond line")
    path = tmp_path / "printed.yaml"
    path.write_text(text)
    assert build_config([str(path)]) == config
    assert yaml.safe_load(text) == to_dict(config)
    assert text.startswith("# first line\n# second line\n")


def test_commented_yaml_documents_every_key_of_the_task_section():
    config = build_config(["configs/squad/squad_v1.yaml"])
    lines = to_commented_yaml(config).splitlines()

    def comment_above(key: str, indent: str = "  ") -> str:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{indent}{key}:"))
        comments = []
        while lines[index - 1].lstrip().startswith("#"):
            index -= 1
            comments.insert(0, lines[index].strip("# "))
        return " ".join(comments)

    assert comment_above("doc_stride").startswith("Context tokens between the starts of consecutive windows")
    assert comment_above("type") == "Task name; see tfft.tasks.TASKS for the choices."
    assert comment_above("mixed_precision") == (
        "Keras dtype policy. Choices: float32, mixed_float16, mixed_bfloat16.")
    assert comment_above("input_path", "    ").startswith("File path or glob")
    assert comment_above("trainer", "").startswith("How to train")
    assert all(len(line) <= 100 for line in lines if line.lstrip().startswith("#"))
    assert "``" not in "\n".join(lines)


def test_the_readme_documents_every_trainer_and_runtime_key():
    import dataclasses

    from tfft.config import RuntimeConfig, TrainerConfig

    readme = (REPO / "README.md").read_text()
    sections = (("trainer", TrainerConfig), ("runtime", RuntimeConfig))
    missing = [f"{section}.{field.name}" for section, keys in sections for field in dataclasses.fields(keys)
               if f"`{section}.{field.name}`" not in readme and f"`{field.name}`" not in readme]
    assert not missing
