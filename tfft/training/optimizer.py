"""AdamW with linear warmup and linear decay, as BERT fine-tuning recipes use it."""

from __future__ import annotations

import math

import keras
from keras import ops

from tfft.config import TrainerConfig


@keras.saving.register_keras_serializable(package="tfft")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to ``peak`` over ``warmup_steps``, then falls linearly to 0.

    Matches ``transformers.get_linear_schedule_with_warmup``.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)

    def __call__(self, step):
        """The learning rate at optimizer step ``step`` (0-based)."""
        step = ops.cast(step, "float32")
        warmup = step / max(self.warmup_steps, 1)
        decay = ops.maximum(self.total_steps - step, 0.0) / max(
            self.total_steps - self.warmup_steps, 1
        )
        return self.peak * ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        """Serialization config."""
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


def no_decay_variables(model: keras.Model) -> list:
    """Biases and LayerNorm scales/offsets, which are kept out of weight decay."""
    variables = [
        variable
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.LayerNormalization)
        for variable in layer.trainable_variables
    ]
    variables += [v for v in model.trainable_variables if v.name == "bias"]
    return variables


def create_optimizer(trainer: TrainerConfig, total_steps: int, model: keras.Model):
    """AdamW for ``model`` with the configured schedule, decay and gradient clipping."""
    schedule = WarmupLinearDecay(
        trainer.learning_rate, math.ceil(trainer.warmup_fraction * total_steps), total_steps
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=trainer.weight_decay,
        beta_1=trainer.adam_beta_1,
        beta_2=trainer.adam_beta_2,
        epsilon=trainer.adam_epsilon,
        global_clipnorm=trainer.max_grad_norm or None,
    )
    optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer
