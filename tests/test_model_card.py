"""The model card (README.md) of both exports: Hugging Face Hub metadata, results, usage."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import yaml
from conftest import hub_cache_with, make_tiny_bert, run_export, run_train, write_sentiment_tsv
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from tfft import model_card
from tfft.config import build_config, save_yaml
from tfft.tasks import TASKS, get_task

#: The tiny checkpoint sits where the Hub cache keeps a download of this id.
HUB_ID = "tfft-tests/tiny-bert"
#: Hub pipeline tags of tfft's tasks.
PIPELINE_TAGS = {
    "sentence_classification": "text-classification", "relation_extraction": "text-classification",
    "sentence_regression": "text-classification", "multi_label_classification": "text-classification",
    "token_classification": "token-classification", "question_answering": "question-answering",
    "multiple_choice": "multiple-choice", "masked_lm": "fill-mask",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """configs/glue/sst2.yaml on a tiny BERT (in Hub-cache layout) and synthetic sentiment TSVs."""
    folder = tmp_path_factory.mktemp("card_run")
    cached = folder / "hub" / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / "0a1b2c"
    checkpoint = make_tiny_bert(cached)
    train = write_sentiment_tsv(folder / "train.tsv", 48, seed=1)
    dev = write_sentiment_tsv(folder / "dev.tsv", 16, seed=2)
    settings = (f"task.init_checkpoint={checkpoint},task.train_data.input_path={train},"
                f"task.validation_data.input_path={dev},task.max_seq_length=32,trainer.epochs=1,"
                "trainer.train_batch_size=16,trainer.eval_batch_size=16")
    model_dir = folder / "sst2_tiny"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override={settings}")
    return model_dir


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    """The run exported as a Hugging Face folder and as a SavedModel."""
    folder = tmp_path_factory.mktemp("card_exports")
    run_export("--format=hf", f"--model_dir={trained}", f"--export_dir={folder / 'hf'}")
    run_export(f"--model_dir={trained}", f"--export_dir={folder / 'saved_model'}")
    return folder / "hf", folder / "saved_model"


@pytest.fixture(scope="module")
def card(exports):
    return ModelCard.load(exports[0] / "README.md")


def strings(value):
    """Every string in nested dicts and lists."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def test_hf_card_holds_the_hub_metadata(card):
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-classification"
    assert data["base_model"] == HUB_ID  # Recovered from the Hub-cache folder.
    assert data["tags"] == ["tfft", "sentence_classification"]
    assert data["metrics"] == ["accuracy", "f1", "matthews_correlation"]
    assert "datasets" not in data  # Local files are not named.


def test_model_index_holds_eval_results(card, trained):
    results = json.loads((trained / "eval_results.json").read_text())
    parsed = model_index_to_eval_results(card.data.to_dict()["model-index"])[1]
    assert parsed == card.data.eval_results
    assert {result.metric_name: result.metric_value for result in parsed} == {
        name: results[name] for name in ("accuracy", "f1", "matthews_corrcoef")}
    assert {(r.task_type, r.task_name, r.dataset_type, r.dataset_split) for r in parsed} == {
        ("text-classification", "Text Classification", "local", "validation")}
    assert card.data.model_name == "sst2_tiny"
    table = dict(re.findall(r"^\| (\w+) \| ([-\d.]+) \|$", card.text, re.MULTILINE))
    assert table == {name: f"{results[name]:.4f}" for name in ("loss", "accuracy", "f1", "matthews_corrcoef")}
    assert "with `checkpoints/final.weights.h5`" in card.text


def test_metadata_holds_no_local_path_and_the_body_the_config(card, trained):
    metadata = card.content.split("---")[1]
    assert str(trained.parent) not in metadata and not [s for s in strings(card.data.to_dict()) if "/" in s
                                                         and s != HUB_ID]
    assert (trained / "params.yaml").read_text().strip() in card.text
    steps = json.loads((trained / "train_results.json").read_text())["steps"]
    assert f"| {steps} | 1 | 48 |" in card.text


def test_saved_model_carries_the_same_card(exports):
    hf, saved_model = exports
    assert (saved_model / "assets" / "README.md").read_text() == (hf / "README.md").read_text()


def test_card_snippets_run_on_both_exports(card, exports):
    """The card's transformers and SavedModel snippets, pointed at the exports, print predictions."""
    hf, saved_model = exports
    code = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)
    assert len(code) == 2 and "AutoModelForSequenceClassification" in code[0]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code[0].replace("path/to/hf_export", str(hf)), {})  # noqa: S102 - the card's own snippet.
        exec(code[1].replace("path/to/saved_model", str(saved_model)), {})  # noqa: S102
    assert "'label'" in printed.getvalue() and "probabilities" in printed.getvalue()


def test_other_weights_than_evaluated_get_no_model_index(trained):
    task = get_task(build_config([str(trained / "params.yaml")]).task)
    config = json.loads((trained / "assets" / "config.json").read_text())
    text = model_card.model_card(trained, task, trained / "checkpoints" / "latest.weights.h5",
                                 {**config, "architectures": ["BertForSequenceClassification"]})
    data = ModelCard(text).data.to_dict()
    assert "model-index" not in data and "metrics" not in data
    assert "This export holds `checkpoints/latest.weights.h5`, not the evaluated weights" in text


def fake_run(folder, task_type: str, eval_results: dict, **task):
    """A model_dir with only what the card reads: params.yaml and eval_results.json."""
    folder.mkdir()
    config = build_config(overrides={"task": {"type": task_type, **task}})
    save_yaml(config, folder / "params.yaml")
    (folder / "eval_results.json").write_text(json.dumps(eval_results))
    return folder, get_task(config.task)


def test_tfds_data_names_the_datasets(tmp_path):
    model_dir, task = fake_run(
        tmp_path / "run", "sentence_classification", {"accuracy": 0.5, "f1": float("nan"), "loss": 0.7},
        init_checkpoint="google-bert/bert-base-uncased", train_data={"input_path": "tfds:glue/sst2/train"},
        validation_data={"input_path": "tfds:glue/sst2:2.0.0/validation"})
    text = model_card.model_card(model_dir, task, model_dir / "final.weights.h5",
                                 {"architectures": ["BertForSequenceClassification"]})
    card = ModelCard(text)
    assert card.data.base_model == "google-bert/bert-base-uncased" and card.data.datasets == ["glue"]
    (result,) = card.data.eval_results  # The NaN F1 is left out.
    assert (result.dataset_name, result.dataset_type, result.dataset_config, result.dataset_split) == (
        "glue/sst2", "glue", "sst2", "validation")
    assert (result.metric_type, result.metric_value) == ("accuracy", 0.5)
    assert "[google-bert/bert-base-uncased](https://huggingface.co/google-bert/bert-base-uncased)" in text


def test_a_bare_encoder_export_gets_no_pipeline(tmp_path):
    """A Hugging Face folder of the encoder alone (relation extraction's entity_start head)."""
    model_dir, task = fake_run(tmp_path / "run", "relation_extraction", {}, init_checkpoint=str(tmp_path),
                               num_labels=2, label_list=["Other", "Cause-Effect(e1,e2)"])
    text = model_card.model_card(model_dir, task, model_dir / "final.weights.h5",
                                 {"architectures": ["BertModel"], "tfft_head": {"pooling": "entity_start"}})
    data = yaml.safe_load(text.split("---")[1])
    assert data == {"library_name": "transformers", "tags": ["tfft", "relation_extraction"]}
    assert "AutoModel.from_pretrained(folder)" in text and "pipeline(" not in text
    assert "`tfft_head` describes the classifier" in text


TAGS = {"label_list": ["O", "B-PER", "I-PER"], "num_labels": 3}


@pytest.mark.parametrize(("task_type", "settings", "head", "expected"), [
    ("token_classification", TAGS, "ForTokenClassification",
     'pipe = pipeline("token-classification", model=model, tokenizer=tokenizer)'),
    ("question_answering", {}, "ForQuestionAnswering",  # transformers 5 has no question-answering pipeline.
     'print(model(**tokenizer("your question", "your context", return_tensors="pt")))'),
])
def test_transformers_snippet_runs_for_each_head(task_type, settings, head, expected, tiny_bert, tmp_path):
    """The card's transformers snippet, on a ``transformers`` model of the same class."""
    import transformers

    folder = tmp_path / "hf"
    config = transformers.BertConfig.from_pretrained(tiny_bert, num_labels=settings.get("num_labels", 2))
    model = getattr(transformers, f"Bert{head}")(config)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    model_dir, task = fake_run(tmp_path / "run", task_type, {}, init_checkpoint=str(tiny_bert), **settings)
    text = model_card.model_card(model_dir, task, model_dir / "final.weights.h5",
                                 json.loads((folder / "config.json").read_text()))
    assert ModelCard(text).data.pipeline_tag == PIPELINE_TAGS[task_type]
    (code, _) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert expected in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.replace("path/to/hf_export", str(folder)), {})  # noqa: S102 - the card's own snippet.
    assert printed.getvalue()


def test_list_inputs_get_no_call_in_the_snippets(tmp_path):
    """Multiple choice: loading code only for transformers, the SavedModel takes a list per question."""
    model_dir, task = fake_run(tmp_path / "run", "multiple_choice", {},
                               init_checkpoint="FacebookAI/roberta-base")
    text = model_card.model_card(model_dir, task, model_dir / "final.weights.h5",
                                 {"architectures": ["RobertaForMultipleChoice"]})
    transformers_code, saved_model_code = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert transformers_code.splitlines()[-1] == "tokenizer = AutoTokenizer.from_pretrained(folder)"
    assert 'choices=tf.constant([["choices 1", "choices 2"]])' in saved_model_code
    assert ModelCard(text).data.pipeline_tag == "multiple-choice"


def test_every_task_declares_its_pipeline_tag():
    assert {name: task.pipeline_tag for name, task in TASKS.items()} == PIPELINE_TAGS


@pytest.mark.parametrize(("checkpoint", "expected"), [
    ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
    ("bert-base-uncased", "bert-base-uncased"),
    ("/data/models/bert", ""),
    ("./bert", ""),
    ("~/bert", ""),
    ("runs/a/b", ""),
    ("/cache/huggingface/hub/models--FacebookAI--roberta-base/snapshots/e2da8e2f", "FacebookAI/roberta-base"),
    ("/cache/hub/models--bert-base-uncased/snapshots/86b5e093", "bert-base-uncased"),
])
def test_hub_id(checkpoint, expected):
    assert model_card.hub_id(checkpoint) == expected


def test_a_local_folder_named_like_a_hub_id_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert model_card.hub_id("org/model") == ""


def test_the_base_checkpoints_license_and_language_carry_over(minilm, tmp_path, monkeypatch):
    """From a local folder's card, or a Hub id's card in the Hugging Face cache; never a guess."""
    assert model_card.base_card_metadata(str(minilm)) == {"license": "apache-2.0", "language": "en"}
    assert model_card.base_card_metadata(str(minilm / "model.safetensors"))["license"] == "apache-2.0"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    hub_cache_with(minilm, "org/minilm", tmp_path / "hub")
    assert model_card.base_card_metadata("org/minilm") == {"license": "apache-2.0", "language": "en"}
    assert model_card.base_card_metadata("org/not-cached") == {}
    monkeypatch.chdir(minilm)  # A Hub id is never read as the working folder's README.md.
    assert model_card.base_card_metadata("bert-base-uncased") == {}
    (tmp_path / "no_card").mkdir()
    (tmp_path / "no_card" / "README.md").write_text("# Notes\n\nlicense: mit\n")
    assert model_card.base_card_metadata(str(tmp_path / "no_card")) == {}

    model_dir, task = fake_run(tmp_path / "run", "sentence_classification", {}, init_checkpoint=str(minilm))
    card = ModelCard(model_card.model_card(model_dir, task, model_dir / "final.weights.h5", None))
    assert (card.data.license, card.data.language, card.data.base_model) == ("apache-2.0", "en", None)
