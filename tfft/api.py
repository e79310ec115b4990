"""The Python API: what ``tfft-train``, ``tfft-export`` and ``tfft-predict`` do, as functions.

The same engine as the command-line tools (:class:`~tfft.training.experiment.Experiment`,
:mod:`tfft.exporting`, :mod:`tfft.prediction`), for notebooks and scripts. Every problem
the user can fix raises :class:`~tfft.errors.TfftError` with the one-line message the
tools print; nothing calls ``sys.exit``.

Example (a notebook session)::

    import tfft

    config = tfft.config.ExperimentConfig(
        task=tfft.config.task_config("sentence_classification", init_checkpoint="bert-base-uncased"),
        trainer=tfft.config.TrainerConfig(epochs=1),
    )
    run = tfft.fine_tune(config, model_dir="runs/sst2", overrides={
        "task.train_data.input_path": "glue/SST-2/train.tsv",
        "task.validation_data.input_path": "glue/SST-2/dev.tsv",
    })
    run.metrics["accuracy"]
    tfft.predict(run.model_dir, ["a gripping film", "two hours I will never get back"])
    export_dir = tfft.export(run.model_dir, "runs/sst2/export/1")
    tfft.predict(export_dir, "a gripping film")   # the SavedModel alone
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tfft import exporting, modeling, prediction
from tfft.config import ExperimentConfig, build_config, to_dict
from tfft.errors import TfftError
from tfft.tasks import Task
from tfft.training.experiment import Experiment

#: A config: an :class:`ExperimentConfig`, a YAML file, a list of YAML files (later wins) or a nested dict.
ConfigLike = ExperimentConfig | str | Path | Sequence[str | Path] | Mapping
#: Overrides: ``{"trainer.epochs": 1}`` (dotted or nested keys), ``"trainer.epochs=1,..."`` or a list.
Overrides = Mapping | str | Sequence[Mapping | str] | None
TRAINING_MODES = ("train_and_eval", "train")


@dataclasses.dataclass(frozen=True)
class Run:
    """What a fine-tuning run left in its model_dir.

    Attributes:
        model_dir: The run's directory.
        config: The resolved config (as saved in ``params.yaml``).
        metrics: ``eval_results.json``: the validation metrics of the final weights
            (empty when the run did not evaluate).
        train_results: ``train_results.json``: steps, epochs, examples/s, loss, timings.
        checkpoints: ``final``, ``best`` and ``latest`` weight files, those the run wrote.
    """

    model_dir: Path
    config: ExperimentConfig
    metrics: dict
    train_results: dict
    checkpoints: dict[str, Path]


def _nested(values: Mapping) -> dict:
    """``{"trainer.epochs": 1}`` as ``{"trainer": {"epochs": 1}}``; nested keys merge."""
    nested: dict = {}
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        if isinstance(value, Mapping) and isinstance(target.get(leaf), dict):
            target[leaf].update(_nested(value))
        else:
            target[leaf] = _nested(value) if isinstance(value, Mapping) else value
    return nested


def _override_layers(overrides: Overrides) -> list:
    if overrides is None:
        return []
    if isinstance(overrides, (str, Mapping)):
        overrides = [overrides]
    return [_nested(layer) if isinstance(layer, Mapping) else layer for layer in overrides]


def resolve_config(config: ConfigLike, overrides: Overrides = None) -> ExperimentConfig:
    """The config a run gets: ``config`` (object, YAML file(s) or dict), then ``overrides``.

    Args:
        config: See :data:`ConfigLike`.
        overrides: See :data:`Overrides`; applied last, checked like ``--params_override``.

    Raises:
        TfftError: for an unknown key, a bad value or a missing file, naming it.
    """
    files, layers = [], []
    if isinstance(config, ExperimentConfig):
        layers.append(to_dict(config))
    elif isinstance(config, Mapping):
        layers.append(_nested(config))
    elif isinstance(config, (str, Path)):
        files.append(str(config))
    else:
        files.extend(str(path) for path in config)
    return build_config(files, layers + _override_layers(overrides))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def fine_tune(config: ConfigLike, model_dir: str | Path, overrides: Overrides = None,
              mode: str = "train_and_eval") -> Run:
    """Fine-tunes as ``tfft-train --mode=train_and_eval`` does (or resumes an interrupted run).

    Args:
        config: The experiment (see :data:`ConfigLike`).
        model_dir: Where checkpoints, logs, ``params.yaml`` and results go.
        overrides: Applied after ``config`` (see :data:`Overrides`).
        mode: ``train_and_eval`` (evaluate after every epoch and at the end) or ``train``.

    Returns:
        The :class:`Run`: metrics, training results and checkpoint paths.
    """
    if mode not in TRAINING_MODES:
        raise TfftError(f"mode '{mode}' does not train; choose {' or '.join(TRAINING_MODES)} "
                        "(tfft.evaluate and tfft.predict run the others)")
    experiment = Experiment(resolve_config(config, overrides), model_dir)
    experiment.run(mode)
    folder = experiment.model_dir / modeling.CHECKPOINTS_DIR
    checkpoints = {name: folder / f"{name}.weights.h5" for name in modeling.CHECKPOINT_NAMES}
    return Run(
        model_dir=experiment.model_dir,
        config=experiment.config,
        metrics=_read_json(experiment.output_dir / "eval_results.json") if mode == "train_and_eval" else {},
        train_results=_read_json(experiment.output_dir / "train_results.json"),
        checkpoints={name: path for name, path in checkpoints.items() if path.is_file()},
    )


def evaluate(model_dir: str | Path, checkpoint: str = "", overrides: Overrides = None) -> dict:
    """Evaluates a run on its validation data, as ``tfft-train --mode=eval`` does.

    Args:
        model_dir: A directory :func:`fine_tune` or ``tfft-train`` wrote.
        checkpoint: ``final``, ``best``, ``latest`` or a ``.weights.h5`` path (default:
            ``final``, else ``latest``).
        overrides: Applied to the run's ``params.yaml``, e.g.
            ``{"task.validation_data.input_path": "test.tsv"}``.

    Returns:
        The task's metrics (also written to ``eval_results.json``).
    """
    model_dir = Path(model_dir)
    config = modeling.load_run_config(model_dir, (), _override_layers(overrides))
    return Experiment(config, model_dir).run("eval", checkpoint)


def export(model_dir: str | Path, export_dir: str | Path, format: str = "saved_model",  # noqa: A002
           checkpoint: str = "") -> Path:
    """Exports a run as ``tfft-export`` does.

    Args:
        model_dir: A directory :func:`fine_tune` or ``tfft-train`` wrote.
        export_dir: A new (or empty) directory, e.g. ``runs/sst2/export/1`` for TF Serving.
        format: ``saved_model`` (raw text in, answers out) or ``hf`` (a PyTorch
            ``transformers`` folder).
        checkpoint: The weights (see :func:`evaluate`).

    Returns:
        ``export_dir``.
    """
    writers = {"saved_model": exporting.export_saved_model, "hf": exporting.export_hf}
    if format not in writers:
        raise TfftError(f"export format '{format}' is unknown; choose one of {', '.join(writers)}")
    return writers[format](model_dir, export_dir, checkpoint)


class Predictor:
    """A fine-tuned model loaded once, predicting raw text: a run's model_dir or a SavedModel.

    A model_dir predicts with the run's weights as ``tfft-train --mode=predict`` does;
    an export runs its ``serving_default`` signature as ``tfft-predict`` does. Both
    return the rows those tools write.

    Args:
        path: A directory :func:`fine_tune` / ``tfft-train`` or :func:`export` /
            ``tfft-export`` wrote.
        checkpoint: For a model_dir: the weights (see :func:`evaluate`).

    Raises:
        TfftError: if ``path`` is neither.
    """

    def __init__(self, path: str | Path, checkpoint: str = ""):
        path = Path(path)
        if (path / modeling.ASSETS_DIR / modeling.PARAMS_FILE).is_file():
            self.task: Task = prediction.export_task(path)
            signature = prediction.raw_text_signature(path, self.task, list(self.task.text_inputs))
            self._rows = lambda examples, batch_size: prediction.serve(
                signature, self.task, examples, self.task.serving_texts(examples), batch_size)[0]
        elif (path / modeling.PARAMS_FILE).is_file():
            experiment = Experiment(modeling.load_run_config(path), path)
            model, tokenizer, _ = experiment.restore(checkpoint)
            self.task = experiment.task
            self._rows = lambda examples, batch_size: experiment.prediction_rows(model, tokenizer, examples)
        else:
            raise TfftError(
                f"'{path}' holds neither a run's params.yaml nor a SavedModel's assets/params.yaml; "
                "pass a model_dir tfft-train wrote or an export_dir tfft-export wrote"
            )

    def __call__(self, texts, batch_size: int = 64):
        """Predicts ``texts``.

        Args:
            texts: One example or a list of them. An example is a string (the first
                text input, e.g. a sentence), a tuple of the task's text inputs in order
                (``(text, text_pair)``, ``(question, context)``, ``(question, context,
                choices)``), or a dict by input name; token classification also takes
                a list of words. A dict of lists holds many examples by input name.
            batch_size: Examples per call of an export's signature.

        Returns:
            One row (a dict) per example, or the row alone for one example.
        """
        names = list(self.task.text_inputs)
        single = _is_one_example(texts, names)
        examples = self.task.examples_from_texts(_columns(texts if not single else [texts], names))
        rows = self._rows(examples, batch_size) if examples else []
        return rows[0] if single else rows


def _is_one_example(texts, names: list[str]) -> bool:
    if isinstance(texts, (str, tuple)):
        return True
    if isinstance(texts, Mapping):
        return not isinstance(texts.get(names[0]), list)
    return False


def _columns(texts, names: list[str]) -> dict[str, list]:
    """``texts`` (many examples, see :meth:`Predictor.__call__`) as one list per input name."""
    if isinstance(texts, Mapping):
        texts = [dict(zip(texts, values, strict=True)) for values in zip(*texts.values(), strict=True)]
    columns: dict[str, list] = {name: [] for name in names}
    for index, example in enumerate(texts):
        values = _named(example, names, index)
        for name in names:
            columns[name].append(values[name])
    return columns


def _named(example: Any, names: list[str], index: int) -> dict:
    """One example's values by input name, checked to be text."""
    takes = (f"the model takes {', '.join(names)} per example; pass a dict with those keys or a tuple "
             "in that order")
    if isinstance(example, Mapping):
        values = dict(example)
    elif isinstance(example, tuple) or (isinstance(example, list) and len(names) > 1):
        if len(example) > len(names):
            raise TfftError(f"text {index} has {len(example)} values, but {takes}")
        values = dict(zip(names, example, strict=False))
    else:  # One input's value: a string, or a list such as a sentence's words.
        values = {names[0]: example}
    if sorted(values) != sorted(names):
        raise TfftError(f"text {index} gives {', '.join(sorted(values)) or 'nothing'}, but {takes}")
    for name, value in values.items():
        if not isinstance(value, str) and not (
                isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)):
            raise TfftError(f"text {index}: '{name}' is {value!r}, not text; pass a string")
    return values


def predict(path: str | Path, texts, checkpoint: str = "", batch_size: int = 64):
    """Predicts raw ``texts`` with a run or an export (see :class:`Predictor`; it loads the model once).

    Example:
        >>> tfft.predict("runs/sst2", ["a gripping film", "dull"])
        [{'text': 'a gripping film', 'label': '1', 'probabilities': [...]}, ...]
    """
    return Predictor(path, checkpoint)(texts, batch_size)
