"""One run in a model_dir: ``train``, ``eval``, ``train_and_eval`` or ``predict``.

Outputs in ``model_dir`` (see :mod:`tfft.modeling` for the model files):

- ``logs/train`` and ``logs/validation``: TensorBoard scalars; ``logs/hparams``: the run's
  settings and final metrics for TensorBoard's HParams dashboard (:mod:`tfft.training.hparams`);
- ``train_results.json``: steps, epochs, training examples/second, final loss;
- ``eval_results.json``: the task's validation metrics for the final weights, computed
  in float32 like the exported model (per-epoch validation uses the training precision),
  and under ``baseline`` what a model that learned nothing scores (where the task says);
- ``predictions.jsonl`` (or ``.conll``, or the task's own files such as SQuAD's
  ``predictions.json``): one prediction per input example (``predict`` mode);
- ``backup/``: resumable state while training runs (:mod:`tfft.training.backup`); a
  rerun of the same command after a crash or preemption continues from it.

Under a multi-worker strategy only the chief writes these; every other worker writes
its ``train_results.json`` and ``eval_results.json`` to ``model_dir/workers/<name>/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfft import evaluation, modeling
from tfft.adapters import load_adapter
from tfft.config import DataConfig, ExperimentConfig, save_yaml, to_dict
from tfft.data import tfrecords
from tfft.data.features import Features
from tfft.data.pipeline import BatchPlan, InMemorySource, TrainingSource, distribute, epoch_dataset
from tfft.errors import TfftError
from tfft.tasks import Task, get_task
from tfft.training.backup import Backup, TrainingState, check_resumable
from tfft.training.callbacks import (
    Backups,
    BestCheckpoint,
    LatestWeights,
    NonFiniteLoss,
    Profiler,
    Progress,
    ProgressBar,
    TrainingScalars,
    Validation,
    WeightFiles,
    console_mode,
    profile_range,
)
from tfft.training.distillation import DistillationModel, load_teacher
from tfft.training.hparams import write_hparams
from tfft.training.interruption import SignalFlag, StopOnSignal
from tfft.training.optimizer import create_optimizer
from tfft.training.run_lock import run_lock
from tfft.training.strategy import configure_runtime, create_strategy, worker_of

MODES = ("train", "eval", "train_and_eval", "predict")
WORKERS_DIR = "workers"


def write_json(path: Path, value) -> None:
    """Writes ``value`` as indented JSON."""
    path.write_text(json.dumps(value, indent=2) + "\n")


class _LocalCopy:
    """A model outside the strategy holding the training model's weights.

    Multi-worker strategies shard prediction across workers; evaluating a local copy
    on every worker instead gives each the whole split (and the same metrics).
    """

    def __init__(self, build):
        self.build = build
        self.model = None

    def __call__(self, model: keras.Model) -> keras.Model:
        if self.model is None:
            self.model = self.build()
        self.model.set_weights(model.get_weights())
        return self.model


class Experiment:
    """Everything one run needs: config, task, strategy and model_dir.

    Args:
        config: The resolved experiment config.
        model_dir: Where checkpoints, logs and results go.
    """

    def __init__(self, config: ExperimentConfig, model_dir: str | Path):
        self.config = config
        self.model_dir = Path(model_dir)
        _check_trainer(config)
        configure_runtime(config.runtime)
        keras.utils.set_random_seed(config.runtime.seed)
        self.task: Task = get_task(config.task)
        self.strategy = create_strategy(config.runtime)
        self.worker = worker_of(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.output_dir = self.model_dir
        if not self.worker.is_chief:
            self.output_dir = self.model_dir / WORKERS_DIR / self.worker.name
        self.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def on_tpu(self) -> bool:
        """Whether the strategy runs on TPUs (which need static shapes)."""
        return isinstance(self.strategy, tf.distribute.TPUStrategy)

    @property
    def static_length(self) -> int:
        """Fixed padding length in static-shape mode (``trainer.static_shapes`` or TPUs), else 0."""
        static = self.config.trainer.static_shapes or self.on_tpu
        return self.config.task.max_seq_length if static else 0

    @property
    def eval_batch_size(self) -> int:
        """Global evaluation batch size."""
        return self.config.trainer.eval_batch_size * self.replicas

    def _model_scope(self):
        """Where inference models are built: the strategy, or locally under multi-worker."""
        return contextlib.nullcontext() if self.worker.multi_worker else self.strategy.scope()

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
        model, tokenizer, weights = self.restore(checkpoint)
        if mode == "eval":
            features = self._validation_features(tokenizer)
            metrics, _ = self._evaluate(model, features)
            metrics.update(self._extra_evaluations(model, tokenizer))
            return self._write_eval_results(metrics, weights, features)
        return self.predict(model, tokenizer, output_format)

    def restore(self, checkpoint: str = ""):
        """The trained model for inference, its tokenizer and its weights file.

        A model_dir no run has written (no ``params.yaml``) gives the model as training would
        start it, from ``task.init_checkpoint``: evaluating it shows where training starts.

        Args:
            checkpoint: See :func:`tfft.modeling.checkpoint_path`.
        """
        with self._model_scope():
            if checkpoint or (self.model_dir / modeling.PARAMS_FILE).is_file():
                return modeling.restore_task_model(self.model_dir, self.task, checkpoint)
            pretrained, tokenizer = modeling.load_pretrained(self.task)
            logging.info("%s holds no run: evaluating task.init_checkpoint '%s' as training starts from it",
                         self.model_dir, self.config.task.init_checkpoint)
            model, _ = modeling.build_task_model(self.task, pretrained.config(), pretrained, len(tokenizer))
            return model, tokenizer, pretrained.weights

    # --- data --------------------------------------------------------------------------

    def _data(self, split: str) -> DataConfig:
        """``task.<split>``: ``validation_data`` or ``extra_validation_data.NAME`` and so on."""
        section, _, name = split.partition(".")
        return self.config.task.extra_validation_sets()[name] if name else getattr(self.config.task, section)

    def _read(self, split: str, labeled: bool = True) -> list:
        data = self._data(split)
        if not data.input_path:
            raise TfftError(f"task.{split}.input_path is empty; set it to a file or tfds:NAME/SPLIT")
        if tfrecords.is_tfrecord_path(data.input_path, data.format):
            raise TfftError(
                f"task.{split}.input_path '{data.input_path}' is TFRecord, which holds no text; "
                "use the text file or TFDS split it was made from"
            )
        examples = self.task.read_examples(data, labeled=labeled)
        logging.info("read %d examples from %s", len(examples), data.input_path)
        return examples

    def _tfrecord_split(self, split: str) -> tfrecords.TFRecordSplit | None:
        """The TFRecord files of ``task.<split>``, checked against the config (None: not TFRecord).

        With ``task.<split>.max_examples``, only its first examples are read (see
        :class:`~tfft.data.tfrecords.TFRecordSplit`).
        """
        data = self._data(split)
        if not tfrecords.is_tfrecord_path(data.input_path, data.format):
            return None
        files = tfrecords.open_split(data.input_path, data.max_examples)
        files.check(data.input_path, self.task.name, self.task.feature_specs, self.config.task.max_seq_length)
        self.task.adopt_label_names(files.metadata["label_names"], data.input_path)
        if not data.max_examples:
            return files
        unit = "examples" if files.counts_examples else "records (these files do not record their examples)"
        logging.info("task.%s.max_examples=%d: reading the first %d %s of %s: %d records", split,
                     data.max_examples, data.max_examples, unit, data.input_path, files.rows)
        return files

    def _training_source(self) -> tuple[TrainingSource, object, object]:
        """Reads (or opens) the training data and settles the labels.

        Returns:
            ``(source, pretrained checkpoint, tokenizer)``.
        """
        files = self._tfrecord_split("train_data")
        examples = None
        if files is None:
            examples = self._read("train_data")
            self.task.prepare(examples)
        check_resumable(self.model_dir, to_dict(self.config))
        checkpoint, tokenizer = modeling.load_pretrained(self.task)
        if files is not None:
            logging.info("training from %d TFRecord files (%d rows)", len(files.files), files.info["rows"])
            return tfrecords.TFRecordSource(files), checkpoint, tokenizer
        features = self.task.encode(examples, tokenizer)
        return InMemorySource(features, self.task.feature_specs), checkpoint, tokenizer

    def _validation_features(self, tokenizer, split: str = "validation_data") -> Features:
        files = self._tfrecord_split(split)
        if files is not None:
            features = tfrecords.read_features(files, self.task.example_type)
        else:
            features = self.task.encode(self._read(split), tokenizer)
        return self.task.evaluation_features(features)

    def _extra_evaluations(self, model, tokenizer) -> dict:
        """The metrics of ``task.extra_validation_data``'s sets, as ``NAME_METRIC``."""
        metrics = {}
        for name in self.config.task.extra_validation_sets():
            features = self._validation_features(tokenizer, f"extra_validation_data.{name}")
            results, _ = self._evaluate(model, features)
            metrics.update({f"{name}_{key}": value for key, value in results.items()})
        return metrics

    def _batch_plan(self, source: TrainingSource) -> BatchPlan:
        trainer = self.config.trainer
        static = self.static_length
        if isinstance(source, tfrecords.TFRecordSource):
            static = source.split.max_seq_length  # Fixed-length records: TPU-style batches.
        return BatchPlan(
            global_batch_size=trainer.train_batch_size * self.replicas,
            seed=self.config.runtime.seed,
            length_grouping=trainer.length_grouping,
            length_group_batches=trainer.length_group_batches,
            static_length=static,
            drop_remainder=bool(static) or self.replicas > 1,
            shuffle_buffer_size=trainer.shuffle_buffer_size,
        )

    # --- training ----------------------------------------------------------------------

    def train(self, with_validation: bool) -> dict:
        """Fine-tunes from ``task.init_checkpoint`` (or resumes); evaluates after each epoch if asked.

        Holds the model_dir's lock meanwhile: a second run on it stops with an error.
        """
        with run_lock(self.output_dir):
            return self._train(with_validation)

    def _train(self, with_validation: bool) -> dict:
        trainer = self.config.trainer
        if trainer.early_stopping_patience and not with_validation:
            raise TfftError(
                "trainer.early_stopping_patience needs validation data: use --mode=train_and_eval"
            )
        clock = time.perf_counter()
        source, checkpoint, tokenizer = self._training_source()
        validation_features = self._validation_features(tokenizer) if with_validation else None
        teacher = self._teacher(tokenizer)
        if self.worker.is_chief:  # Once every input has been read: bad input changes no file.
            save_yaml(self.config, self.model_dir / modeling.PARAMS_FILE)
        seconds = {"read_and_encode": time.perf_counter() - clock}
        plan = self._batch_plan(source)
        steps_per_epoch = plan.steps_per_epoch(source.num_rows)
        if steps_per_epoch < 1:
            raise TfftError(
                f"{source.num_rows} training examples make no full batch of {plan.global_batch_size}; "
                "lower trainer.train_batch_size or add data"
            )
        accumulation = trainer.gradient_accumulation_steps
        if steps_per_epoch % accumulation:
            logging.warning("%d batches per epoch are not a multiple of trainer.gradient_accumulation_"
                            "steps=%d: updates straddle epoch ends", steps_per_epoch, accumulation)
        total_updates = steps_per_epoch * trainer.epochs // accumulation
        clock = time.perf_counter()
        model, backbone = self._compiled_model(checkpoint, len(tokenizer), total_updates, teacher)
        seconds["build_model"] = time.perf_counter() - clock
        if self.worker.is_chief:
            modeling.save_assets(self.model_dir, backbone, tokenizer, self.task)
        progress = Progress(batches_per_epoch=steps_per_epoch, epochs=trainer.epochs,
                            accumulation=accumulation)
        backup = Backup(self.model_dir, model, to_dict(self.config), writer=self.worker.is_chief)
        state = backup.restore() or TrainingState()
        files = WeightFiles(model)
        callbacks, scalars, validation, best = self._callbacks(
            progress, backup, state, source, validation_features, backbone, files
        )
        logging.info("training %d steps (%d epochs of %d batches, global batch %d on %d replicas)",
                     total_updates, trainer.epochs, steps_per_epoch, plan.global_batch_size, self.replicas)
        start = time.perf_counter()
        signals = SignalFlag()
        stop = StopOnSignal(signals, backup, progress, best,
                            self.strategy if self.worker.multi_worker else None)
        with signals.installed():
            epochs, batches_run, loss = self._fit(model, source, plan, progress, state, callbacks + [stop])
            train_seconds = time.perf_counter() - start - (validation.seconds if validation else 0.0)
            if self.worker.is_chief:
                files.save(self._checkpoint_file("final"))
            stop.raise_if_received(self._checkpoint_file("final"))
        backup.remove()
        examples_trained = source.num_examples * batches_run / steps_per_epoch
        seconds.update(first_batch=scalars.first_batch_seconds, train=train_seconds,
                       validation=validation.seconds if validation else 0.0)
        results = {
            "steps": int(model.optimizer.iterations.numpy()),
            "epochs": epochs,
            "train_examples": source.num_examples,
            # Whole fit() time without validation, tracing and first step included.
            "train_seconds": train_seconds,
            "examples_per_second": examples_trained / train_seconds,
            # The same after the first step (compilation) only.
            "steady_examples_per_second": scalars.examples_per_second,
            "loss": loss,
            # Wall time of each stage of this process (final evaluation: eval_results.json).
            "seconds": seconds,
        }
        lengths = getattr(source, "token_lengths", None)
        if lengths is not None:  # Matrix FLOPs on the tokens themselves (no padding).
            results["train_flops"] = 3 * backbone.forward_flops(lengths) * batches_run / steps_per_epoch
            results["model_flops_per_second"] = results["train_flops"] / train_seconds
        if state.epoch or state.batches:
            results["resumed_from"] = {"epoch": state.epoch + 1, "batches": state.batches}
        write_json(self.output_dir / "train_results.json", results)
        if not with_validation:
            self._write_hparams({"train_loss": loss}, results["steps"])
            return results
        # Evaluation, prediction and export run in float32, so eval_results.json holds
        # exactly what the exported model computes. The last epoch's validation runs in
        # float32 (under mixed precision on a float32 copy), so it needs no second pass
        # unless early stopping put earlier weights back.
        clock = time.perf_counter()
        metrics = None if best.restored else validation.float32_metrics_at(results["steps"])
        modeling.set_precision("float32")
        if metrics is None or self.config.task.extra_validation_data:
            # Under mixed precision, the validation's float32 copy serves again.
            final = (validation.float32_model or self._inference_copy(backbone.hf_config))(model)
            if metrics is None:
                metrics, _ = self._evaluate(final, validation_features)
            metrics.update(self._extra_evaluations(final, tokenizer))
        metrics["eval_seconds"] = time.perf_counter() - clock
        metrics = self._write_eval_results(metrics, self._checkpoint_file("final"), validation_features)
        self._write_hparams({**metrics, "train_loss": loss}, results["steps"])
        return metrics

    def _fit(self, model, source: TrainingSource, plan: BatchPlan, progress: Progress,
             state: TrainingState, callbacks: list) -> tuple[int, int, float]:
        """One ``fit`` call per epoch from ``state`` on (a resumed epoch skips its trained batches).

        Returns:
            ``(epochs done, batches trained here, last epoch's training loss)``.
        """
        batches_run, loss, epoch = 0, float("nan"), state.epoch
        for epoch in range(state.epoch, progress.epochs):
            skip = state.batches if epoch == state.epoch else 0
            progress.epoch, progress.first_batch = epoch, skip
            dataset = distribute(
                self.strategy, lambda context, e=epoch, s=skip: epoch_dataset(source, plan, e, s, context,
                                                               self.task.training_transform())
            )
            try:
                history = model.fit(dataset, initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=0,
                                    steps_per_epoch=progress.batches_per_epoch - skip, callbacks=callbacks)
            except tf.errors.DataLossError as error:  # Damaged TFRecord files met while training.
                # TensorFlow's message: "Graph execution error:", the Python stack, then its own lines.
                lines = [line.strip() for line in error.message.splitlines()
                         if line.strip() and not line.strip().startswith(("File ", "[[", "Graph execution",
                                                                          "Detected at"))]
                what = lines[-1] if lines else "data loss"
                raise TfftError(
                    f"cannot read the training data ({what}); recreate its TFRecord files with "
                    "tools/create_tfrecords.py (rerunning resumes from the last backup)"
                ) from None
            batches_run += progress.batches_per_epoch - skip
            loss = float(history.history["loss"][-1])
            if model.stop_training:
                break
        return epoch + 1, batches_run, loss

    def _teacher(self, tokenizer):
        """The model of ``task.teacher_model_dir`` in the strategy's scope, or None without one."""
        if not self.config.task.teacher_model_dir:
            return None
        modeling.set_precision(self.config.runtime.mixed_precision)
        with self.strategy.scope():
            return load_teacher(self.config.task.teacher_model_dir, self.task, tokenizer)

    def _compiled_model(self, checkpoint, vocab_size: int, total_steps: int, teacher=None):
        """Pretrained backbone + head, frozen as configured, compiled in the strategy's scope.

        The word-embedding table grows to ``vocab_size`` (the tokenizer's) if that is
        larger. With a ``teacher``, the loss holds its soft targets (:mod:`tfft.training.distillation`).
        The optimizer is built too, so that a backup can be restored into it.
        """
        trainer = self.config.trainer
        modeling.set_precision(self.config.runtime.mixed_precision)
        with self.strategy.scope():
            model, backbone = modeling.build_task_model(
                self.task, checkpoint.config(), checkpoint, vocab_size
            )
            backbone.reinitialize_top_layers(trainer.reinit_top_layers)
            backbone.set_trainable_encoder_layers(trainer.trainable_encoder_layers)
            backbone.pooler.trainable = backbone.pooler.trainable and self.task.uses_pooler
            if self._enable_lora(backbone):
                self._start_lora(model, backbone)
            if teacher is not None:
                model = DistillationModel(model, teacher, self.task, trainer)
            model.compile(
                optimizer=create_optimizer(trainer, total_steps, model, backbone),
                loss=self.task.loss(),
                metrics=self.task.train_metrics(),
                steps_per_execution=trainer.steps_per_execution,
                jit_compile=trainer.jit_compile,
            )
            model.optimizer.build(model.trainable_variables)
        return model, backbone

    def _enable_lora(self, backbone) -> list:
        """Adds the configured LoRA layers (``trainer.lora_rank`` > 0) to ``backbone``; returns them."""
        trainer = self.config.trainer
        if not trainer.lora_rank:
            return []
        return backbone.enable_lora(trainer.lora_rank, trainer.lora_scale_numerator,
                                    trainer.lora_targets)

    def _start_lora(self, model, backbone) -> None:
        """Loads ``trainer.lora_adapter`` (if set) into the LoRA model and logs what trains."""
        trainer = self.config.trainer
        if trainer.lora_adapter:
            load_adapter(trainer.lora_adapter, backbone, self.task.hf_head(model, backbone),
                         trainer.lora_rank, trainer.lora_scale_numerator)
        trained = sum(math.prod(variable.shape) for variable in model.trainable_weights)
        logging.info("LoRA rank %d on %s: training %s of %s parameters (%.2f%%)",
                     trainer.lora_rank, ", ".join(trainer.lora_targets), f"{trained:,}",
                     f"{model.count_params():,}", 100 * trained / model.count_params())

    def _inference_copy(self, hf_config: dict, precision: str = "") -> _LocalCopy:
        """Builds (on first use) a model to predict with, of ``precision`` (default: the current).

        It has the training model's LoRA layers, so that their weights copy over one to one.
        """

        def build():
            policy = keras.mixed_precision.global_policy()
            if precision:
                modeling.set_precision(precision)
            try:
                with self._model_scope():
                    model, backbone = modeling.build_task_model(self.task, hf_config)
                    self._enable_lora(backbone)
                    return model
            finally:
                keras.mixed_precision.set_global_policy(policy)

        return _LocalCopy(build)

    def _callbacks(self, progress: Progress, backup: Backup, state: TrainingState,
                   source: TrainingSource, validation_features: Features | None, backbone,
                   files: WeightFiles):
        """The callback list (validation first: later ones read its ``val_*`` metrics)."""
        trainer, chief = self.config.trainer, self.worker.is_chief
        logs = (lambda name: self.model_dir / "logs" / name) if chief else (lambda name: None)
        console = console_mode()  # A progress bar in a terminal or notebook, else log lines.
        scalars = TrainingScalars(logs("train"), progress, trainer.train_batch_size * self.replicas,
                                  source.num_rows, trainer.log_every_steps, trainer.epochs,
                                  log_steps=console.step_log_lines)
        callbacks: list = [NonFiniteLoss(progress)]
        validation = best = None
        if validation_features is not None:
            local = self._inference_copy(backbone.hf_config) if self.worker.multi_worker else None
            float32 = self.config.runtime.mixed_precision == "float32"
            validation = Validation(
                self.task, validation_features, self.eval_batch_size, logs("validation"),
                self.static_length, self.replicas > 1 and not local, local,
                float32_model=None if float32 else self._inference_copy(backbone.hf_config, "float32"),
                last_epoch=trainer.epochs - 1, float32=float32, max_tokens=trainer.eval_max_tokens,
            )
            best = BestCheckpoint(
                f"val_{self.task.main_metric}", self.task.main_metric_mode,
                self._checkpoint_file("best"), files, trainer.early_stopping_patience, write=chief,
            )
            if state.callbacks:
                best.load_state(state.callbacks)
            callbacks += [validation, best]
        if chief:
            callbacks.append(LatestWeights(self._checkpoint_file("latest"), files))
        if trainer.backup_steps >= 0:
            callbacks.append(Backups(backup, progress, trainer.backup_steps, best))
        profiled = profile_range(trainer.profile_steps)
        if profiled and chief:
            callbacks.append(Profiler(logs("profile"), progress, *profiled))
        bar = [ProgressBar(progress)] if console.progress_bar else []
        return callbacks + [scalars] + bar, scalars, validation, best

    def _checkpoint_file(self, name: str) -> Path:
        folder = self.model_dir / modeling.CHECKPOINTS_DIR
        if self.worker.is_chief:
            folder.mkdir(exist_ok=True)
        return folder / f"{name}.weights.h5"

    # --- evaluation and prediction -------------------------------------------------------

    def _evaluate(self, model, features: Features):
        return evaluation.evaluate(
            self.task, model, features, self.eval_batch_size, self.static_length,
            full_batches=self.replicas > 1 and not self.worker.multi_worker,
            max_tokens=self.config.trainer.eval_max_tokens,
        )

    def _write_eval_results(self, metrics: dict, weights: Path, features: Features) -> dict:
        metrics = {**metrics, "checkpoint": str(weights)}
        baseline = self.task.baseline_metrics(features)
        if baseline:
            metrics["baseline"] = baseline
        write_json(self.output_dir / "eval_results.json", metrics)
        logging.info("eval results: %s", metrics)
        return metrics

    def _write_hparams(self, metrics: dict, step: int) -> None:
        if self.worker.is_chief:
            write_hparams(self.model_dir / "logs" / "hparams", self.config, metrics, step)

    def predict(self, model, tokenizer, output_format: str = "") -> dict:
        """Writes the task's predictions file(s) for ``task.predict_data``.

        Without predict data, the validation data is predicted.
        """
        split = "predict_data" if self.config.task.predict_data.input_path else "validation_data"
        examples = self._read(split, labeled=False)
        rows = self.prediction_rows(model, tokenizer, examples)
        path = self.task.write_predictions(rows, self.output_dir, output_format)
        logging.info("wrote %d predictions to %s", len(examples), path)
        return {"predictions": len(examples), "path": str(path)}

    def prediction_rows(self, model, tokenizer, examples: list) -> list[dict]:
        """The task's prediction rows (:meth:`~tfft.tasks.Task.predictions`) of ``examples``."""
        features = self.task.encode(examples, tokenizer)
        view, specs = evaluation.task_view(self.task, model, labelled=False)
        outputs, _ = evaluation.predict(
            view, features, specs, self.eval_batch_size, self.static_length,
            full_batches=self.replicas > 1 and not self.worker.multi_worker,
            output_length=self.task.prediction_length, output_padding=self.task.prediction_padding,
            max_tokens=self.config.trainer.eval_max_tokens,
        )
        return self.task.predictions(examples, features, outputs)


def _check_trainer(config: ExperimentConfig) -> None:
    """Rejects trainer settings that cannot work, naming the key."""
    trainer = config.trainer
    profile_range(trainer.profile_steps)
    for key, minimum in (("gradient_accumulation_steps", 1), ("steps_per_execution", 1),
                         ("shuffle_buffer_size", 1), ("backup_steps", -1), ("epochs", 1),
                         ("train_batch_size", 1), ("eval_batch_size", 1), ("eval_max_tokens", 0),
                         ("reinit_top_layers", 0), ("lr_reference_width", 0), ("log_every_steps", 1),
                         ("early_stopping_patience", 0), ("trainable_encoder_layers", -1),
                         ("length_group_batches", 1), ("lora_rank", 0), ("lora_alpha", 0),
                         ("weight_decay", 0), ("max_grad_norm", 0)):
        if getattr(trainer, key) < minimum:
            raise TfftError(f"trainer.{key} must be at least {minimum}, got {getattr(trainer, key)}")
    if not 0 <= trainer.warmup_fraction <= 1:
        raise TfftError(f"trainer.warmup_fraction must be in [0, 1], got {trainer.warmup_fraction}")
    for key in ("adam_beta_1", "adam_beta_2"):
        if not 0 <= getattr(trainer, key) < 1:
            raise TfftError(f"trainer.{key} must be in [0, 1), got {getattr(trainer, key)}")
    for key in ("learning_rate", "adam_epsilon"):
        if not getattr(trainer, key) > 0:
            raise TfftError(f"trainer.{key} must be positive, got {getattr(trainer, key)}")
    if trainer.lora_adapter and not trainer.lora_rank:
        raise TfftError("trainer.lora_adapter needs trainer.lora_rank (and lora_alpha, lora_targets) set "
                        "to the adapter's")
    if trainer.lora_rank and (trainer.trainable_encoder_layers != -1 or trainer.reinit_top_layers):
        raise TfftError(
            "trainer.lora_rank trains LoRA updates of a frozen backbone; it cannot be combined with "
            "trainer.trainable_encoder_layers or trainer.reinit_top_layers (leave them at -1 and 0)"
        )
    if not 0 < trainer.layer_decay <= 1:
        raise TfftError(f"trainer.layer_decay must be in (0, 1], got {trainer.layer_decay}; 1.0 turns it off")
    if trainer.distill_temperature <= 0:
        raise TfftError(f"trainer.distill_temperature must be positive, got {trainer.distill_temperature}")
    if not 0 <= trainer.distill_alpha <= 1:
        raise TfftError(f"trainer.distill_alpha must be in [0, 1], got {trainer.distill_alpha}; 1.0 learns "
                        "from the teacher alone, 0.0 from the labels alone")
    if trainer.head_lr_multiplier <= 0:
        raise TfftError(f"trainer.head_lr_multiplier must be positive, got {trainer.head_lr_multiplier}; "
                        "1.0 turns it off")
