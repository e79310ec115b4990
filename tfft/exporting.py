"""Exporting a fine-tuned model_dir: a SavedModel for TF Serving, or a Hugging Face folder.

The SavedModel's ``serving_default`` signature takes raw text where the task declares
:attr:`~tfft.tasks.Task.text_inputs` (``text`` and ``text_pair`` strings for sentence
tasks) and tokenizes it in the graph exactly as training did
(:class:`~tfft.data.graph_tokenizers.GraphTokenizer`); it returns the task's
:meth:`~tfft.tasks.Task.text_outputs` (e.g. ``label`` names and ``probabilities``).
``tokenize`` returns the model inputs of raw text, ``serve_examples`` takes serialized
``tf.Example``s holding the raw inputs as bytes features, and ``serve_token_ids`` takes
the token inputs the task's :attr:`~tfft.tasks.Task.feature_specs` declare (int32
``input_ids``, ``token_type_ids``, ``attention_mask`` [batch, seq]). Tasks without text
inputs serve token ids under both names. The tokenizer files, the backbone config,
``labels.txt``, the run's ``params.yaml`` and its model card (``README.md``, see
:mod:`tfft.model_card`) travel in ``assets/``. Loading needs
TensorFlow alone (the tokenizers use only ops TensorFlow itself registers)::

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    serve(text=tf.constant(["a gripping, beautifully acted film"]))["label"]

The Hugging Face export (:func:`export_hf`) writes ``config.json``,
``model.safetensors``, the tokenizer files of the family's task class (e.g.
``BertForSequenceClassification``) and the same model card, for PyTorch ``transformers``::

    model = transformers.AutoModelForSequenceClassification.from_pretrained(export_dir)

A LoRA run (``trainer.lora_rank``) exports like any other, its checkpoints holding the
merged kernels; :func:`export_lora_adapter` writes just the adapter instead, in the
format of the PEFT library (:mod:`tfft.adapters`).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from tfft import backbones, modeling
from tfft.adapters import low_rank_factors, saved_whole, write_adapter
from tfft.backbones.checkpoint import open_checkpoint
from tfft.backbones.layers import pack_real_tokens
from tfft.backbones.saving import write_hf_folder
from tfft.data.graph_tokenizers import GraphTokenizer
from tfft.data.pipeline import input_signature
from tfft.data.tokenization import save_tokenizer
from tfft.errors import TfftError
from tfft.model_card import write_model_card
from tfft.tasks import Task, get_task
from tfft.tasks.base import HfHead


class ServingModule(tf.Module):
    """A tf.Module holding the Keras model, its serving functions and its assets.

    Args:
        model: The fine-tuned Keras model (float32).
        task: The task, which names and computes the serving outputs.
        asset_files: Files copied into the SavedModel's ``assets/``.
        tokenizer: The in-graph tokenizer, or None to serve token ids only.
        pack: Whether the encoder skips padding (:func:`~tfft.backbones.layers.pack_real_tokens`).
        full_attention: ``serve_token_ids`` takes no ``attention_mask``: every position is a real
            token (for graphs whose quantization cannot represent the padding bias).
    """

    def __init__(self, model, task: Task, asset_files: list[Path], tokenizer=None, pack: bool = True,
                 full_attention: bool = False):
        super().__init__(name="tfft_serving")
        # Track the model's tf.Variables, not the Keras model. A Keras 3 variable exports
        # itself as a second variable initialized from the first (``tf.Variable(object_map[
        # self.value])`` in keras/src/backend/tensorflow/core.py): the SavedModel's restore op
        # fills that copy while the serving functions read the first, which nothing restores.
        # tf.saved_model.load binds both to one object, but graph loaders (TF Serving,
        # ``saved_model_cli run``) fail with "Could not find variable" (keras-team/keras#20095).
        self._model = self._no_dependency(model)
        if pack:
            pack_real_tokens(model)  # Graphs for TF Serving on CPUs and GPUs, without XLA.
        self.model_variables = [variable.value for variable in model.variables]
        self._task = task
        self.assets = [tf.saved_model.Asset(str(path)) for path in asset_files]
        token_specs = input_signature(task.feature_specs)
        self._full_attention = full_attention
        if full_attention:
            del token_specs[ATTENTION_MASK]
        self._token_names = list(token_specs)
        self.serve_token_ids = tf.function(self._serve_token_ids, input_signature=list(token_specs.values()))
        self.tokenizer = tokenizer
        self._text_names = list(task.text_inputs) if tokenizer is not None else []
        if self._text_names:
            text_specs = list(task.text_inputs.values())
            self.serve_text = tf.function(self._serve_text, input_signature=text_specs)
            self.tokenize = tf.function(self._tokenize, input_signature=text_specs)
            self.serve_examples = tf.function(
                self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")])

    def signatures(self) -> dict:
        """The SavedModel's signatures by name.

        ``serving_default`` takes raw text where the task and tokenizer allow it, else token ids.
        """
        token_ids = self.serve_token_ids.get_concrete_function()
        if not self._text_names:
            return {"serving_default": token_ids, "serve_token_ids": token_ids}
        return {
            "serving_default": self.serve_text.get_concrete_function(),
            "serve_token_ids": token_ids,
            "tokenize": self.tokenize.get_concrete_function(),
            "serve_examples": self.serve_examples.get_concrete_function(),
        }

    def _run_model(self, features: dict):
        inputs = {name: features[name] for name in self._token_names}
        if self._full_attention:
            inputs[ATTENTION_MASK] = tf.ones_like(inputs["input_ids"])
        return self._model(inputs, training=False)

    def _serve_token_ids(self, *inputs):
        """Runs the model on the task's token inputs; returns the task's named outputs."""
        return self._task.serving_outputs(self._run_model(dict(zip(self._token_names, inputs, strict=True))))

    def _texts(self, inputs) -> dict:
        return dict(zip(self._text_names, inputs, strict=True))

    def _serve_text(self, *inputs):
        """Raw text in, the task's answers out."""
        texts = self._texts(inputs)
        features = self._task.text_features(texts, self.tokenizer)
        return self._task.text_outputs(texts, features, self._run_model(features))

    def _tokenize(self, *inputs):
        """The model inputs training would give the same raw text."""
        features = self._task.text_features(self._texts(inputs), self.tokenizer)
        return {name: features[name] for name in self._token_names}

    def _serve_examples(self, examples):
        """``serving_default`` on serialized ``tf.Example``s holding its inputs as bytes features."""
        features = {name: tf.io.FixedLenFeature(spec.shape[1:], tf.string)
                    for name, spec in self._task.text_inputs.items()}
        parsed = tf.io.parse_example(examples, features)
        return self._serve_text(*(parsed[name] for name in self._text_names))


ATTENTION_MASK = "attention_mask"
#: Formats ``tfft-export --format`` accepts.
FORMATS = ("saved_model", "hf", "litert")
#: ``tfft-export --quantize`` values by format (the first is the default).
QUANTIZATIONS = {"saved_model": ("none", "int8"), "hf": ("none",),
                 "litert": ("dynamic", "int8", "int8_full", "none")}


def check_quantization(export_format: str, quantize: str) -> str:
    """``quantize``, or the format's default where it is empty.

    Raises:
        TfftError: for a quantization the format does not offer.
    """
    choices = QUANTIZATIONS[export_format]
    if quantize and quantize not in choices:
        raise TfftError(f"--quantize={quantize} is not available for --format={export_format}; choose one "
                        f"of {', '.join(choices)}")
    return quantize or choices[0]


def restore_for_export(model_dir: Path, export_dir: Path, checkpoint: str):
    """The run's task, float32 model, tokenizer and weights file, after checking ``export_dir``."""
    if export_dir.exists() and any(export_dir.iterdir()):
        raise TfftError(f"--export_dir '{export_dir}' is not empty; choose a new directory")
    config = modeling.load_run_config(model_dir)
    modeling.set_precision("float32")  # Export float32 weights whatever the training precision was.
    task = get_task(config.task)
    model, tokenizer, weights = modeling.restore_task_model(model_dir, task, checkpoint)
    return task, model, tokenizer, weights


def export_saved_model(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "",
                       quantize: str = "none") -> Path:
    """Writes a SavedModel of the model trained in ``model_dir``.

    Args:
        model_dir: A directory written by ``tfft-train``.
        export_dir: Where to write the SavedModel (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).
        quantize: ``none`` (float32), or ``int8``: Keras' int8 quantization of every Dense and
            embedding layer (``Model.quantize``: weights int8 per output channel, a Dense layer's
            inputs quantized per token at run time), about a quarter of the size.

    Returns:
        The export directory.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    quantize = check_quantization("saved_model", quantize)
    task, model, tokenizer, weights = restore_for_export(model_dir, export_dir, checkpoint)
    if quantize == "int8":
        quantize_int8(model)
    asset_files = sorted(p for p in (model_dir / modeling.ASSETS_DIR).iterdir() if p.is_file())
    asset_files.append(model_dir / modeling.PARAMS_FILE)  # The task settings post-processing needs.
    try:
        hf_config = _hf_config(task, model)[0]  # The card names the Hugging Face class too.
    except TfftError:
        hf_config = None
    with tempfile.TemporaryDirectory() as folder:  # Assets are copied when the SavedModel is saved.
        asset_files.append(write_model_card(Path(folder), model_dir, task, weights, hf_config))
        module = ServingModule(model, task, asset_files, _graph_tokenizer(task, tokenizer, model_dir))
        tf.saved_model.save(module, str(export_dir), signatures=module.signatures())
    return export_dir


def quantize_int8(model) -> None:
    """Keras' int8 quantization of ``model``'s Dense and embedding layers, in place."""
    with warnings.catch_warnings():  # Keras warns for every layer it leaves as it is (LayerNorm...).
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize("int8")
    logging.info("quantized to int8: %d variables of int8", sum(v.dtype == "int8" for v in model.variables))


def _graph_tokenizer(task: Task, tokenizer, model_dir: Path):
    """The in-graph tokenizer for raw-text signatures, or None (token ids only) with a warning."""
    if not task.text_inputs:
        return None
    try:
        return GraphTokenizer(tokenizer, model_dir / modeling.ASSETS_DIR)
    except TfftError as error:
        logging.warning("serving_default takes token ids: %s", error)
        return None


def export_hf(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "") -> Path:
    """Writes the model trained in ``model_dir`` as a Hugging Face (PyTorch) model folder.

    The backbone and the task head are saved under the names of the family's
    ``transformers`` task class, with ``architectures``, labels and ``problem_type``
    in ``config.json``, and the tokenizer files and the model card (``README.md``) next to them.

    Args:
        model_dir: A directory written by ``tfft-train``.
        export_dir: Where to write the folder (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).

    Returns:
        The export directory.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    task, model, tokenizer, weights = restore_for_export(model_dir, export_dir, checkpoint)
    config, head = _hf_config(task, model)
    backbone = model.get_layer("backbone")
    write_hf_folder(export_dir, config, {**backbone.hf_state_dict(head.pooler_key), **head.tensors})
    save_tokenizer(tokenizer, export_dir)
    write_model_card(export_dir, model_dir, task, weights, config)
    return export_dir


def _hf_config(task: Task, model) -> tuple[dict, HfHead]:
    """The Hugging Face folder's ``config.json`` and the task head it names.

    Raises:
        TfftError: if the task has no Hugging Face counterpart.
    """
    backbone = model.get_layer("backbone")
    head = task.hf_head(model, backbone)
    config = {key: value for key, value in backbone.hf_config.items() if key not in head.config}
    config.update(head.config, architectures=[f"{backbone.hf_class_prefix}{head.architecture}"])
    return config, head



def export_lora_adapter(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "") -> Path:
    """Writes a LoRA run's adapter as a PEFT folder (see :mod:`tfft.adapters`), with the tokenizer files.

    The run's checkpoints hold merged kernels, so each adapted kernel's LoRA matrices are
    recovered as the rank-``trainer.lora_rank`` factorisation (SVD) of its change from
    ``task.init_checkpoint``: exact up to float32 rounding. In PyTorch::

        base = transformers.AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=2)
        model = peft.PeftModel.from_pretrained(base, export_dir)

    Args:
        model_dir: A directory written by ``tfft-train`` with ``trainer.lora_rank`` > 0.
        export_dir: Where to write the folder (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).

    Returns:
        The export directory.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    config = modeling.load_run_config(model_dir)
    trainer = config.trainer
    if not trainer.lora_rank:
        raise TfftError(f"--lora_only: '{model_dir}' was not trained with LoRA (its trainer.lora_rank is "
                        "0); export the whole model without --lora_only")
    task, model, tokenizer, _ = restore_for_export(model_dir, export_dir, checkpoint)
    head = _hf_config(task, model)[1]
    tuned = model.get_layer("backbone")
    start = open_checkpoint(config.task.init_checkpoint)
    base = backbones.from_config(start.config(), name="backbone")
    start.load_into(base)
    alpha = trainer.lora_scale_numerator
    whole = saved_whole(tuned, head)
    originals = base.hf_modules(trainer.lora_targets)
    factors = {}
    for module, layer in tuned.hf_modules(trainer.lora_targets).items():
        if not any(spec.variable is layer.kernel for spec in whole):  # A pooler saved whole needs no LoRA.
            change = np.asarray(layer.kernel) - np.asarray(originals[module].kernel)  # [in, out]
            factors[module] = low_rank_factors(change.T, trainer.lora_rank, alpha / trainer.lora_rank)
    write_adapter(export_dir, factors, whole, head.architecture, trainer.lora_rank, alpha,
                  config.task.init_checkpoint)
    save_tokenizer(tokenizer, export_dir)
    return export_dir


def export(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "",
           export_format: str = "saved_model", quantize: str = "", calibration_examples: int = 100,
           lora_only: bool = False) -> str:
    """What ``tfft-export`` does with the flags of the same names; returns the line it prints."""
    if lora_only:
        path, what = export_lora_adapter(model_dir, export_dir, checkpoint), "LoRA adapter (PEFT)"
    else:
        quantize = check_quantization(export_format, quantize)
        if export_format == "hf":
            path, what = export_hf(model_dir, export_dir, checkpoint), "Hugging Face model"
        elif export_format == "litert":
            from tfft.litert import export_litert  # It builds on this module.

            path = export_litert(model_dir, export_dir, checkpoint, quantize, calibration_examples)
            what = f"LiteRT model ({quantize})"
        else:
            path = export_saved_model(model_dir, export_dir, checkpoint, quantize)
            what = "SavedModel" if quantize == "none" else f"{quantize} SavedModel"
    logging.info("exported %s to %s", what, path)
    return f"{what} written to {path}"
