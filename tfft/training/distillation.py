"""Knowledge distillation: the model learns from a finished run's outputs (``task.teacher_model_dir``).

The teacher is restored from its model_dir (frozen, never saved with the student) and runs
on every training batch beside the student; the loss is
``distill_alpha * task.distillation_loss(student, teacher) + (1 - distill_alpha) * task loss``.
The student is any model of the same task and vocabulary: another checkpoint, or the teacher's
own run with ``task.student_layers`` (DistilBERT's initialisation).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from tfft import modeling
from tfft.config import TrainerConfig
from tfft.errors import TfftError
from tfft.tasks import Task, get_task


class DistillationModel(keras.Model):
    """A task model whose training loss also holds the teacher's soft targets.

    It is the student's functional graph (same layers, same weights files); the teacher is
    kept out of Keras' and TensorFlow's tracking, so that weights files and backups hold the
    student alone.

    Args:
        model: The student task model.
        teacher: The frozen teacher task model.
        task: The task, which defines the soft-target loss.
        trainer: The trainer section (``distill_temperature``, ``distill_alpha``).
    """

    def __init__(self, model: keras.Model, teacher: keras.Model, task: Task, trainer: TrainerConfig):
        super().__init__(inputs=model.input, outputs=model.output, name=model.name)
        temperature = trainer.distill_temperature

        def soft_loss(x, y, y_pred):
            targets = keras.tree.map_structure(keras.ops.stop_gradient, teacher(x, training=False))
            return task.distillation_loss(y_pred, targets, y, temperature)

        # A closure: neither Keras' weights files nor TensorFlow's checkpoints look into one.
        object.__setattr__(self, "_soft_loss", soft_loss)
        self.distill_alpha = trainer.distill_alpha

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """When training: ``distill_alpha`` x the soft-target loss + (1 - ``distill_alpha``) x the task's."""
        hard = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if not training:
            return hard
        return self.distill_alpha * self._soft_loss(x, y, y_pred) + (1.0 - self.distill_alpha) * hard


def load_teacher(model_dir: str, task: Task, tokenizer) -> keras.Model:
    """The trained model of the run in ``model_dir``, checked against the student's task and tokenizer.

    Build it in the strategy's scope, under the run's dtype policy.

    Raises:
        TfftError: if the run is of another task, labels or vocabulary, or cannot be restored.
    """
    folder = Path(model_dir)
    if not task.distillable:
        raise TfftError(f"task {task.name} cannot learn from a teacher; unset task.teacher_model_dir")
    if not (folder / modeling.PARAMS_FILE).is_file():
        raise TfftError(f"task.teacher_model_dir '{model_dir}' holds no run ({modeling.PARAMS_FILE} is "
                        "missing); point it at a finished tfft-train model_dir of the same task")
    config = modeling.load_run_config(folder)
    if config.task.type != task.name:
        raise TfftError(f"task.teacher_model_dir '{model_dir}' is a {config.task.type} run; the teacher "
                        f"must be a run of this task, {task.name}")
    teacher_task = get_task(config.task)
    teacher, teacher_tokenizer, weights = modeling.restore_task_model(folder, teacher_task)
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise TfftError(f"task.teacher_model_dir '{model_dir}' has another vocabulary "
                        f"({len(teacher_tokenizer)} tokens) than the student's tokenizer "
                        f"({len(tokenizer)}); the student must read the teacher's token ids: start it from a "
                        "checkpoint of the same tokenizer")
    if teacher_task.label_names != task.label_names:
        raise TfftError(f"task.teacher_model_dir '{model_dir}' predicts labels {teacher_task.label_names}, "
                        f"this run {task.label_names}; give the student the teacher's task.label_list")
    teacher.trainable = False
    logging.info("distilling from %s (%s, %d encoder layers)", weights,
                 f"{teacher.count_params():,} parameters", len(teacher.get_layer("backbone").encoder_layers))
    return teacher
