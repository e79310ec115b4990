"""One run in a model_dir: ``train``, ``eval``, ``train_and_eval`` or ``predict``.

Outputs in ``model_dir`` (see :mod:`tfft.modeling` for the model files):

- ``logs/train`` and ``logs/validation``: TensorBoard scalars;
- ``train_results.json``: steps, epochs, training examples/second, final loss;
- ``eval_results.json``: the task's validation metrics for the final weights, computed
  in float32 like the exported model (per-epoch validation uses the training precision);
- ``predictions.jsonl`` (or ``.conll``, or the task's own files such as SQuAD's
  ``predictions.json``): one prediction per input example (``predict`` mode).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import keras

from tfft import evaluation, modeling
from tfft.config import ExperimentConfig, save_yaml
from tfft.data.features import Features
from tfft.data.pipeline import train_dataset
from tfft.errors import TfftError
from tfft.tasks import Task, get_task
from tfft.training.callbacks import TrainingScalars, Validation
from tfft.training.optimizer import create_optimizer
from tfft.training.strategy import create_strategy, set_precision

MODES = ("train", "eval", "train_and_eval", "predict")
#: ``--output_format`` values for predictions (each task writes some of them).
OUTPUT_FORMATS = ("jsonl", "conll", "json")


def write_json(path: Path, value) -> None:
    """Writes ``value`` as indented JSON."""
    path.write_text(json.dumps(value, indent=2) + "\n")


class Experiment:
    """Everything one run needs: config, task, strategy and model_dir.

    Args:
        config: The resolved experiment config.
        model_dir: Where checkpoints, logs and results go.
    """

    def __init__(self, config: ExperimentConfig, model_dir: str | Path):
        self.config = config
        self.model_dir = Path(model_dir)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(config.runtime.seed)
        self.task: Task = get_task(config.task)
        self.strategy = create_strategy(config.runtime)
        self.replicas = self.strategy.num_replicas_in_sync

    @property
    def static_length(self) -> int:
        """Fixed padding length in static-shape mode, else 0."""
        return self.config.task.max_seq_length if self.config.trainer.static_shapes else 0

    @property
    def inference_length(self) -> int:
        """Fixed padding length for evaluation and prediction (static shapes or per-token outputs)."""
        return self.static_length or self.task.prediction_length

    @property
    def eval_batch_size(self) -> int:
        """Global evaluation batch size."""
        return self.config.trainer.eval_batch_size * self.replicas

    def run(self, mode: str, checkpoint: str = "", output_format: str = "") -> dict:
        """Runs ``mode`` and returns its results (metrics, or prediction count).

        Args:
            mode: One of :data:`MODES`.
            checkpoint: Weights for eval/predict (see :func:`tfft.modeling.checkpoint_path`).
            output_format: For predict: one of the task's ``output_formats`` (empty: its default).
        """
        if mode not in MODES:
            raise TfftError(f"--mode has unknown value '{mode}'; choose one of {', '.join(MODES)}")
        if mode in ("train", "train_and_eval"):
            return self.train(with_validation=mode == "train_and_eval")
        model, tokenizer, weights = self._restore(checkpoint)
        if mode == "eval":
            features = self._features("validation_data", tokenizer)
            return self._final_evaluation(model, features, weights)
        return self.predict(model, tokenizer, output_format)

    def _read(self, split: str, labeled: bool = True) -> list:
        data = getattr(self.config.task, split)
        if not data.input_path:
            raise TfftError(f"task.{split}.input_path is empty; set it to a file or tfds:NAME/SPLIT")
        examples = self.task.read_examples(data, labeled=labeled)
        logging.info("read %d examples from %s", len(examples), data.input_path)
        return examples

    def _features(self, split: str, tokenizer) -> Features:
        return self.task.encode(self._read(split), tokenizer)

    def _restore(self, checkpoint: str):
        with self.strategy.scope():
            return modeling.restore_task_model(self.model_dir, self.task, checkpoint)

    def train(self, with_validation: bool) -> dict:
        """Fine-tunes from ``task.init_checkpoint``; evaluates after each epoch if asked."""
        trainer = self.config.trainer
        if trainer.early_stopping_patience and not with_validation:
            raise TfftError(
                "trainer.early_stopping_patience needs validation data: use --mode=train_and_eval"
            )
        train_examples = self._read("train_data")
        self.task.prepare(train_examples)
        save_yaml(self.config, self.model_dir / modeling.PARAMS_FILE)
        checkpoint, tokenizer = modeling.load_pretrained(self.task)
        train_features = self.task.encode(train_examples, tokenizer)
        validation_features = self._features("validation_data", tokenizer) if with_validation else None
        global_batch = trainer.train_batch_size * self.replicas
        dataset = train_dataset(
            train_features, global_batch, self.config.runtime.seed,
            trainer.length_grouping, self.static_length,
        )
        steps_per_epoch = int(dataset.cardinality())
        if steps_per_epoch < 1:
            raise TfftError(
                f"{len(train_features)} training examples make no full batch of {global_batch}; "
                "lower trainer.train_batch_size or add data"
            )
        model, backbone = self._compiled_model(checkpoint, steps_per_epoch * trainer.epochs)
        modeling.save_assets(self.model_dir, backbone, tokenizer, self.task)
        scalars = TrainingScalars(
            self.model_dir / "logs" / "train", global_batch, len(train_features),
            trainer.log_every_steps,
        )
        validation = None
        if validation_features is not None:
            validation = Validation(
                self.task, validation_features, self.eval_batch_size,
                self.model_dir / "logs" / "validation", self.inference_length,
            )
        # Validation first: the callbacks after it read its val_* metrics.
        callbacks = [validation] if validation else []
        callbacks += self._checkpoint_callbacks(bool(validation)) + [scalars]
        logging.info("training %d steps (%d epochs of %d, global batch %d on %d replicas)",
                     steps_per_epoch * trainer.epochs, trainer.epochs, steps_per_epoch,
                     global_batch, self.replicas)
        start = time.perf_counter()
        history = model.fit(
            dataset, epochs=trainer.epochs, callbacks=callbacks, shuffle=False, verbose=2
        )
        train_seconds = time.perf_counter() - start - (validation.seconds if validation else 0.0)
        model.save_weights(str(self._checkpoint_file("final")))
        results = {
            "steps": int(model.optimizer.iterations.numpy()),
            "epochs": len(history.epoch),
            "train_examples": train_features.num_examples,
            # Whole fit() time without validation, tracing and first step included.
            "train_seconds": train_seconds,
            "examples_per_second": train_features.num_examples * len(history.epoch) / train_seconds,
            # The same after the first step (compilation) only.
            "steady_examples_per_second": scalars.examples_per_second,
            "loss": float(history.history["loss"][-1]),
        }
        write_json(self.model_dir / "train_results.json", results)
        # Evaluation, prediction and export run in float32, so eval_results.json holds
        # exactly what the exported model computes.
        set_precision("float32")
        if with_validation:
            model, _, weights = self._restore("final")
            return self._final_evaluation(model, validation_features, weights)
        return results

    def _compiled_model(self, checkpoint, total_steps: int):
        """Pretrained backbone + head, frozen as configured, compiled in the strategy's scope."""
        trainer = self.config.trainer
        set_precision(self.config.runtime.mixed_precision)
        with self.strategy.scope():
            model, backbone = modeling.build_task_model(self.task, checkpoint.config(), checkpoint)
            backbone.set_trainable_encoder_layers(trainer.trainable_encoder_layers)
            backbone.pooler.trainable = backbone.pooler.trainable and self.task.uses_pooler
            model.compile(
                optimizer=create_optimizer(trainer, total_steps, model),
                loss=self.task.loss(),
                metrics=self.task.train_metrics(),
                steps_per_execution=trainer.steps_per_execution,
                jit_compile=trainer.jit_compile,
            )
        return model, backbone

    def _checkpoint_file(self, name: str) -> Path:
        folder = self.model_dir / modeling.CHECKPOINTS_DIR
        folder.mkdir(exist_ok=True)
        return folder / f"{name}.weights.h5"

    def _checkpoint_callbacks(self, validated: bool) -> list:
        """Latest weights every epoch; with validation, best weights and early stopping."""
        callbacks = [keras.callbacks.ModelCheckpoint(
            str(self._checkpoint_file("latest")), save_weights_only=True
        )]
        if not validated:
            return callbacks
        monitor, mode = f"val_{self.task.main_metric}", self.task.main_metric_mode
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(self._checkpoint_file("best")), monitor=monitor, mode=mode,
            save_best_only=True, save_weights_only=True,
        ))
        if self.config.trainer.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=self.config.trainer.early_stopping_patience,
                restore_best_weights=True, verbose=1,
            ))
        return callbacks

    def _final_evaluation(self, model, features: Features, weights: Path) -> dict:
        metrics, _ = evaluation.evaluate(
            self.task, model, features, self.eval_batch_size, self.inference_length
        )
        metrics["checkpoint"] = str(weights)
        write_json(self.model_dir / "eval_results.json", metrics)
        logging.info("eval results: %s", metrics)
        return metrics

    def predict(self, model, tokenizer, output_format: str = "") -> dict:
        """Writes the task's predictions file(s) for ``task.predict_data``.

        Without predict data, the validation data is predicted.
        """
        split = "predict_data" if self.config.task.predict_data.input_path else "validation_data"
        examples = self._read(split, labeled=False)
        features = self.task.encode(examples, tokenizer)
        outputs, _ = evaluation.predict(model, features, self.eval_batch_size, self.inference_length)
        rows = self.task.predictions(examples, features, outputs)
        path = self.task.write_predictions(rows, self.model_dir, output_format)
        logging.info("wrote %d predictions to %s", len(examples), path)
        return {"predictions": len(examples), "path": str(path)}
