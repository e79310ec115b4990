"""Exporting a fine-tuned model_dir: a SavedModel for TF Serving, or a Hugging Face folder.

The SavedModel's ``serving_default`` signature takes the task's model inputs as its
:attr:`~tfft.tasks.Task.feature_specs` declare them (int32 ``input_ids``,
``token_type_ids`` and ``attention_mask`` of shape [batch, seq] for most tasks) and
returns the task's serving outputs (``logits`` and ``probabilities`` for classification,
``predictions`` for regression, ``logits`` and ``tag_ids`` for token classification,
``start_logits`` and ``end_logits`` for question answering). The tokenizer files, the
backbone config, ``labels.txt`` and the run's ``params.yaml`` travel in ``assets/``.
Loading needs only TensorFlow::

    model = tf.saved_model.load(export_dir)
    outputs = model.signatures["serving_default"](
        input_ids=ids, token_type_ids=types, attention_mask=mask)

The Hugging Face export (:func:`export_hf`) writes ``config.json``,
``model.safetensors`` and the tokenizer files of the family's task class (e.g.
``BertForSequenceClassification``), for PyTorch ``transformers``::

    model = transformers.AutoModelForSequenceClassification.from_pretrained(export_dir)
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfft import modeling
from tfft.backbones.saving import write_hf_folder
from tfft.data.pipeline import input_signature
from tfft.data.tokenization import save_tokenizer
from tfft.errors import TfftError
from tfft.tasks import Task, get_task


class ServingModule(tf.Module):
    """A tf.Module holding the Keras model, its serving function and its assets.

    Args:
        model: The fine-tuned Keras model (float32).
        task: The task, which names and computes the serving outputs.
        asset_files: Files copied into the SavedModel's ``assets/``.
    """

    def __init__(self, model, task: Task, asset_files: list[Path]):
        super().__init__(name="tfft_serving")
        self.model = model
        self._task = task
        self.assets = [tf.saved_model.Asset(str(path)) for path in asset_files]
        signature = input_signature(task.feature_specs)
        self._names = list(signature)
        self.serve = tf.function(self._serve, input_signature=list(signature.values()))

    def _serve(self, *inputs):
        """Runs the model on the task's inputs; returns the task's named outputs."""
        outputs = self.model(dict(zip(self._names, inputs, strict=True)), training=False)
        return self._task.serving_outputs(outputs)


#: Formats ``tfft-export --format`` accepts.
FORMATS = ("saved_model", "hf")


def _restore_for_export(model_dir: Path, export_dir: Path, checkpoint: str):
    """The run's task and float32 model (with tokenizer), after checking ``export_dir``."""
    if export_dir.exists() and any(export_dir.iterdir()):
        raise TfftError(f"--export_dir '{export_dir}' is not empty; choose a new directory")
    config = modeling.load_run_config(model_dir)
    modeling.set_precision("float32")  # Export float32 weights whatever the training precision was.
    task = get_task(config.task)
    model, tokenizer, _ = modeling.restore_task_model(model_dir, task, checkpoint)
    return task, model, tokenizer


def export_saved_model(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "") -> Path:
    """Writes a SavedModel of the model trained in ``model_dir``.

    Args:
        model_dir: A directory written by ``tfft-train``.
        export_dir: Where to write the SavedModel (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).

    Returns:
        The export directory.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    task, model, _ = _restore_for_export(model_dir, export_dir, checkpoint)
    asset_files = sorted(p for p in (model_dir / modeling.ASSETS_DIR).iterdir() if p.is_file())
    asset_files.append(model_dir / modeling.PARAMS_FILE)  # The task settings post-processing needs.
    module = ServingModule(model, task, asset_files)
    tf.saved_model.save(
        module, str(export_dir), signatures={"serving_default": module.serve.get_concrete_function()}
    )
    return export_dir


def export_hf(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "") -> Path:
    """Writes the model trained in ``model_dir`` as a Hugging Face (PyTorch) model folder.

    The backbone and the task head are saved under the names of the family's
    ``transformers`` task class, with ``architectures``, labels and ``problem_type``
    in ``config.json``, and the tokenizer files next to them.

    Args:
        model_dir: A directory written by ``tfft-train``.
        export_dir: Where to write the folder (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).

    Returns:
        The export directory.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    task, model, tokenizer = _restore_for_export(model_dir, export_dir, checkpoint)
    backbone = model.get_layer("backbone")
    head = task.hf_head(model, backbone)
    config = {key: value for key, value in backbone.hf_config.items() if key not in head.config}
    config.update(head.config, architectures=[f"{backbone.hf_class_prefix}{head.architecture}"])
    write_hf_folder(export_dir, config, {**backbone.hf_state_dict(head.pooler_key), **head.tensors})
    save_tokenizer(tokenizer, export_dir)
    return export_dir
