"""The model card (``README.md``) of an exported model, in the Hugging Face Hub's layout.

``tfft-export`` writes one next to a Hugging Face folder's ``config.json`` and into a
SavedModel's ``assets/``; both exports of the same weights get the same card. Its YAML
front matter holds the Hub's metadata: ``library_name``, ``tags``, ``pipeline_tag`` (the
task's :attr:`~tfft.tasks.Task.pipeline_tag`), ``base_model`` (``task.init_checkpoint``
when it is a Hub id), ``license`` and ``language`` (the base checkpoint's own card, where its
folder has one), ``datasets`` (TFDS names of the data), ``metrics`` and a ``model-index``
with the run's ``eval_results.json``. Metadata never holds a local path:
local checkpoints and data files are left out of it. The body says what the model is,
its evaluation and training results, how to load it, and the run's ``params.yaml``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import huggingface_hub
import huggingface_hub.repocard
import yaml

from tfft import modeling
from tfft.config import DataConfig
from tfft.data.sources import TFDS_PREFIX
from tfft.tasks import Task

CARD_FILE = "README.md"
EVAL_RESULTS_FILE = "eval_results.json"
TRAIN_RESULTS_FILE = "train_results.json"

#: tfft metric names whose Hugging Face metric id (https://hf.co/metrics) differs.
METRIC_TYPES = {
    "matthews_corrcoef": "matthews_correlation", "pearson": "pearsonr", "spearman": "spearmanr",
    "micro_f1": "f1", "macro_f1": "f1", "micro_precision": "precision", "micro_recall": "recall",
}
#: ``transformers`` pipelines (by Hub tag) that take the task's text inputs as they are (a string, or
#: a dict of them by input name); transformers 5 has no question-answering pipeline.
TRANSFORMERS_PIPELINES = ("text-classification", "token-classification")
#: A Hub id: ``name`` or ``org/name`` (``--`` and ``..`` are not allowed in either).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
#: A checkpoint folder in the Hugging Face cache: ``.../models--ORG--NAME/snapshots/REVISION``.
_HUB_CACHE = re.compile(r"models--([\w.-]+)/snapshots/")
#: Metadata a fine-tuned model inherits from its base checkpoint's card.
INHERITED_METADATA = ("license", "language")


def hub_id(checkpoint: str) -> str:
    """``checkpoint`` (as ``task.init_checkpoint`` gives it) as a Hub id, or "" for a local one.

    A folder in the Hugging Face cache counts as the Hub id it was downloaded from.

    Args:
        checkpoint: A Hub id or a local folder or file.
    """
    cached = _HUB_CACHE.search(Path(checkpoint).expanduser().as_posix())
    if cached:
        return cached[1].replace("--", "/")
    if not _HUB_ID.fullmatch(checkpoint) or "--" in checkpoint or ".." in checkpoint:
        return ""
    return "" if Path(checkpoint).expanduser().exists() else checkpoint


def base_card_metadata(checkpoint: str) -> dict:
    """The :data:`INHERITED_METADATA` of the base checkpoint's own card ({} where it has none).

    Args:
        checkpoint: ``task.init_checkpoint``: a local folder (or a file in one) with a Hub
            ``README.md``, or a Hub id whose card is in the local Hugging Face cache (nothing
            is downloaded).
    """
    if not checkpoint:
        return {}
    path = Path(checkpoint).expanduser()
    if path.exists():
        card = (path if path.is_dir() else path.parent) / CARD_FILE
    else:
        cached = huggingface_hub.try_to_load_from_cache(checkpoint, CARD_FILE) if hub_id(checkpoint) else None
        card = Path(cached) if isinstance(cached, str) else None
    if card is None or not card.is_file():
        return {}
    try:
        metadata = huggingface_hub.repocard.metadata_load(card) or {}
    except (ValueError, UnicodeDecodeError, yaml.YAMLError):  # A card without valid metadata.
        return {}
    return {key: metadata[key] for key in INHERITED_METADATA if isinstance(metadata.get(key), (str, list))}


def tfds_dataset(data: DataConfig) -> dict:
    """The TFDS dataset of ``tfds:NAME[/CONFIG]/SPLIT`` data as ``{name, config, split}``; {} otherwise."""
    if not data.input_path.startswith(TFDS_PREFIX):
        return {}
    name, _, split = data.input_path[len(TFDS_PREFIX):].rpartition("/")
    name, _, config = name.partition("/")
    dataset = {"name": name.partition(":")[0], "config": config.partition(":")[0], "split": split}
    return {key: value for key, value in dataset.items() if value}


def metric_type(name: str) -> str:
    """The Hugging Face metric id of a tfft metric name (the name itself when there is none)."""
    return METRIC_TYPES.get(name, name)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _weights_name(weights: Path) -> str:
    """``checkpoints/final.weights.h5`` for the run's own weights, else the file's name."""
    if weights.parent.name == modeling.CHECKPOINTS_DIR:
        return f"{modeling.CHECKPOINTS_DIR}/{weights.name}"
    return weights.name


def _evaluated(eval_results: dict, weights: Path) -> bool:
    """Whether ``eval_results`` were computed on ``weights`` (unrecorded: assumed so)."""
    checkpoint = eval_results.get("checkpoint")
    return not checkpoint or _weights_name(Path(checkpoint)) == _weights_name(weights)


def _reported_metrics(task: Task, eval_results: dict) -> list[str]:
    """The task's metrics found in ``eval_results``, in the task's order."""
    return [name for name in task.metric_names if isinstance(eval_results.get(name), (int, float))]


def model_index(name: str, task: Task, eval_results: dict) -> list[dict]:
    """The ``model-index`` of the Hub's metadata: the validation metrics (not the loss) of ``task``.

    Args:
        name: The model's name.
        task: The run's task (its validation data names the dataset).
        eval_results: The run's ``eval_results.json``.

    Returns:
        ``[{name, results: [{task, dataset, metrics}]}]``; [] without finite metrics.
    """
    metrics = [{"type": metric_type(metric), "value": eval_results[metric], "name": metric}
               for metric in _reported_metrics(task, eval_results)
               if metric != "loss" and math.isfinite(eval_results[metric])]
    if not metrics:
        return []
    result = {"dataset": _index_dataset(task.config.validation_data), "metrics": metrics}
    if task.pipeline_tag:
        result = {"task": {"type": task.pipeline_tag, "name": task.pipeline_tag.replace("-", " ").title()},
                  **result}
    return [{"name": name, "results": [result]}]


def _index_dataset(data: DataConfig) -> dict:
    """The ``dataset`` of a model-index result: the TFDS dataset, or ``local files``."""
    tfds = tfds_dataset(data)
    if not tfds:
        return {"name": "local files", "type": "local", "split": "validation"}
    name = "/".join(filter(None, (tfds["name"], tfds.get("config"))))
    details = {key: tfds[key] for key in ("config", "split") if key in tfds}
    return {"name": name, "type": tfds["name"], **details}


def card_metadata(name: str, task: Task, eval_results: dict, hf_config: dict | None) -> dict:
    """The card's YAML front matter (free of local paths).

    Args:
        name: The model's name.
        task: The run's task.
        eval_results: ``eval_results.json`` of the exported weights ({} when there is none).
        hf_config: The Hugging Face folder's ``config.json`` (None: no Hugging Face counterpart).
    """
    metadata = {"library_name": "transformers"} if hf_config else {}
    metadata["tags"] = ["tfft", task.name]
    if task.pipeline_tag and (hf_config is None or _task_class(hf_config) != "AutoModel"):
        metadata["pipeline_tag"] = task.pipeline_tag
    base_model = hub_id(task.config.init_checkpoint)
    if base_model:
        metadata["base_model"] = base_model
    metadata.update(base_card_metadata(task.config.init_checkpoint))
    datasets = [tfds_dataset(task.config.train_data).get("name"),
                tfds_dataset(task.config.validation_data).get("name")]
    if any(datasets):
        metadata["datasets"] = list(dict.fromkeys(filter(None, datasets)))
    metrics = [metric_type(metric) for metric in _reported_metrics(task, eval_results) if metric != "loss"]
    if metrics:
        metadata["metrics"] = list(dict.fromkeys(metrics))
    index = model_index(name, task, eval_results)
    if index:
        metadata["model-index"] = index
    return metadata


def _task_class(hf_config: dict | None) -> str:
    """The ``transformers`` Auto class of ``config.json``'s architecture (``…ForX`` → ``AutoModelForX``)."""
    architecture = (hf_config or {}).get("architectures", [""])[0]
    return "AutoModel" + architecture[architecture.index("For"):] if "For" in architecture else "AutoModel"


def _data_sources(task: Task) -> str:
    """``local files``, or the ``tfds:`` training data (and validation data where it differs)."""
    train, validation = (f"`{data.input_path}`" if tfds_dataset(data) else "local files"
                         for data in (task.config.train_data, task.config.validation_data))
    return train if train == validation else f"{train} (validation: {validation})"


def _intro(name: str, task: Task, backbone_config: dict) -> list[str]:
    base_model = hub_id(task.config.init_checkpoint)
    source = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a local checkpoint"
    family = backbone_config.get("model_type", "")
    lines = [
        f"# {name}", "",
        f"A {f'`{family}` ' if family else ''}encoder fine-tuned from {source} with tfft for "
        f"`{task.name}`, on {_data_sources(task)}.",
    ]
    if task.label_names:
        lines += ["", f"Labels ({len(task.label_names)}): {', '.join(f'`{n}`' for n in task.label_names)}."]
    return lines


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _evaluation(task: Task, eval_results: dict, weights_name: str, evaluated: bool) -> list[str]:
    lines = ["", "## Evaluation", ""]
    if not eval_results:
        return lines + ["The run wrote no `eval_results.json` (it trained without validation data)."]
    checkpoint = _weights_name(Path(eval_results.get("checkpoint", weights_name)))
    lines += [f"On {eval_results.get('num_examples', 'the')} validation examples with `{checkpoint}` "
              f"(from the run's `{EVAL_RESULTS_FILE}`; main metric: `{task.main_metric}`):", "",
              "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {_number(eval_results[name])} |" for name in _reported_metrics(task, eval_results)]
    if not evaluated:
        lines += ["", f"This export holds `{weights_name}`, not the evaluated weights, so the metadata "
                  "lists no results; `tfft-train --mode=eval --checkpoint=...` evaluates them."]
    return lines


def _training(train_results: dict, params: str) -> list[str]:
    lines = ["", "## Training", ""]
    if train_results:
        columns = {"steps": ("steps", 0), "epochs": ("epochs", 0), "train_examples": ("training examples", 0),
                   "examples_per_second": ("examples/s", 1), "train_seconds": ("seconds", 1),
                   "loss": ("final loss", 4)}
        shown = [key for key in columns if key in train_results]
        lines += ["From the run's `train_results.json`:", "",
                  "| " + " | ".join(columns[key][0] for key in shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(_number(train_results[key], columns[key][1]) for key in shown) + " |", ""]
    return lines + ["The run's config (`params.yaml`, as training resolved it):", "", "```yaml",
                    params.rstrip("\n"), "```"]


def _example_inputs(task: Task) -> dict[str, str | list[str]]:
    """One example's value of each raw-text input of the task (a list where its spec is ``[batch, n]``)."""
    return {name: [f"{name} 1", f"{name} 2"] if spec.shape.rank == 2 else f"your {name}"
            for name, spec in task.text_inputs.items()}


def _model_call(task: Task, auto_class: str) -> list[str]:
    """Lines running the loaded ``model`` on example inputs.

    A pipeline where ``transformers`` has one for the task's Hub tag, else the model on the
    tokenized texts; none where an input is a list of texts.
    """
    inputs = _example_inputs(task)
    if not inputs or any(isinstance(value, list) for value in inputs.values()):
        return []
    if task.pipeline_tag in TRANSFORMERS_PIPELINES and auto_class != "AutoModel":
        example = json.dumps(next(iter(inputs.values())) if len(inputs) == 1 else inputs, ensure_ascii=False)
        return [f'pipe = pipeline("{task.pipeline_tag}", model=model, tokenizer=tokenizer)',
                f"print(pipe({example}))"]
    texts = ", ".join(json.dumps(value, ensure_ascii=False) for value in inputs.values())
    return [f'print(model(**tokenizer({texts}, return_tensors="pt")))']


def _transformers_usage(task: Task, hf_config: dict) -> list[str]:
    auto_class = _task_class(hf_config)
    call = _model_call(task, auto_class)
    pipeline = ["pipeline"] if any("pipeline(" in line for line in call) else []
    imports = ", ".join(["AutoTokenizer", auto_class, *pipeline])
    code = [f"from transformers import {imports}", "",
            'folder = "path/to/hf_export"  # the tfft-export --format=hf folder, or its Hub id',
            f"model = {auto_class}.from_pretrained(folder)",
            "tokenizer = AutoTokenizer.from_pretrained(folder)", *call]
    architecture = hf_config["architectures"][0]
    lines = ["", "## Use with transformers", "",
             "`tfft-export --format=hf` writes the Hugging Face folder (PyTorch, `model.safetensors`, with "
             f"this card as its `{CARD_FILE}`); its `config.json` names `{architecture}`:", "",
             "```python", *code, "```"]
    if "tfft_head" in hf_config:
        lines += ["", "`config.json`'s `tfft_head` describes the classifier on top of the encoder, whose "
                  "`classifier.*` tensors `model.safetensors` holds (see tfft's README)."]
    return lines


def _saved_model_usage(task: Task) -> list[str]:
    if task.text_inputs:
        call = ", ".join(f"{name}=tf.constant({json.dumps([value], ensure_ascii=False)})"
                         for name, value in _example_inputs(task).items())
        what = "raw text"
    else:
        call = ", ".join(f"{name}=..." for name in task.feature_specs.inputs)
        what = "int32 token ids"
    return ["", "## Use the TensorFlow SavedModel", "",
            "`tfft-export` writes the same weights as a SavedModel for TF Serving, with this card in "
            f"its `assets/{CARD_FILE}`. Its `serving_default` takes {what} and needs TensorFlow alone:", "",
            "```python", "import tensorflow as tf", "",
            'serve = tf.saved_model.load("path/to/saved_model").signatures["serving_default"]',
            f"print(serve({call}))", "```"]


def model_card(model_dir: str | Path, task: Task, weights: Path, hf_config: dict | None) -> str:
    """The model card of the weights ``weights`` of the run in ``model_dir``.

    Args:
        model_dir: A directory written by ``tfft-train``.
        task: The run's task (restored, with its labels).
        weights: The exported weights file.
        hf_config: The Hugging Face folder's ``config.json`` (None: the task has no Hugging Face
            counterpart).

    Returns:
        The card: YAML front matter between ``---`` lines, then Markdown.
    """
    model_dir = Path(model_dir)
    name = model_dir.resolve().name
    eval_results = _read_json(model_dir / EVAL_RESULTS_FILE)
    weights_name = _weights_name(weights)
    evaluated = _evaluated(eval_results, weights)
    metadata = card_metadata(name, task, eval_results if evaluated else {}, hf_config)
    backbone_config = _read_json(model_dir / modeling.ASSETS_DIR / "config.json")
    params = (model_dir / modeling.PARAMS_FILE).read_text()
    body = [*_intro(name, task, backbone_config),
            *_evaluation(task, eval_results, weights_name, evaluated),
            *(_transformers_usage(task, hf_config) if hf_config else []),
            *_saved_model_usage(task),
            *_training(_read_json(model_dir / TRAIN_RESULTS_FILE), params)]
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(body) + "\n"


def write_model_card(folder: Path, model_dir: str | Path, task: Task, weights: Path,
                     hf_config: dict | None) -> Path:
    """Writes :func:`model_card` as ``folder/README.md``; returns its path."""
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(model_dir, task, weights, hf_config), encoding="utf-8")
    return path
