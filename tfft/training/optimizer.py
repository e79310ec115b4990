"""AdamW with linear warmup and linear decay, as BERT fine-tuning recipes use it."""

from __future__ import annotations

import logging
import math

import keras
import tensorflow as tf
from keras import ops

from tfft.backbones import Backbone
from tfft.config import TrainerConfig


@keras.saving.register_keras_serializable(package="tfft")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to ``peak`` over ``warmup_steps``, then falls linearly to 0.

    Matches ``transformers.get_linear_schedule_with_warmup``. Steps are optimizer
    updates: with gradient accumulation, Keras calls the schedule with the batch
    counter, which is divided by ``accumulation_steps``.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, accumulation_steps: int = 1):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)
        self.accumulation_steps = max(accumulation_steps, 1)

    def __call__(self, step):
        """The learning rate at optimizer update ``step // accumulation_steps`` (0-based)."""
        step = ops.cast(ops.floor_divide(step, self.accumulation_steps), "float32")
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
            "accumulation_steps": self.accumulation_steps,
        }


@keras.saving.register_keras_serializable(package="tfft")
class AdamW(keras.optimizers.AdamW):
    """Keras' AdamW with PyTorch's dense embedding gradients, fused updates and global clipping.

    Four differences from Keras' own; Adam's update formula itself is Keras':

    - Embedding gradients arrive as ``IndexedSlices`` with one slice per token, so a
      token that occurs twice has two slices. Keras squares the slices for the global
      norm, which overcounts repeated tokens against PyTorch's norm of the summed
      (dense) gradient. Here each row's slices are summed first; clipping then reads
      and scales only those rows, not the whole table.
    - Each variable is updated by TensorFlow's fused ``ResourceApplyAdam`` kernel: one
      multithreaded pass over the variable, both moments and the gradient, where Keras'
      element-wise ops make about ten (for a 30k-word embedding table, most of the
      step's time on a CPU). Rows without gradient still decay their moments and move,
      as in PyTorch's dense AdamW.
    - Decoupled weight decay multiplies each variable by ``1 - lr * weight_decay`` (as
      PyTorch does, before the Adam step) and assigns the product, which takes over the
      product's buffer: one pass over the variable, where Keras' ``v.assign_sub(v * wd
      * lr)`` makes three and two temporaries (about 8% of a MiniLM step on a CPU).
    - Keras 3 clips each replica's gradient before the cross-replica sum, so with several
      replicas ``global_clipnorm`` bounds the replicas' partial gradients, not the
      gradient of the global batch, and training differs from one device. Here the
      replicas first sum their gradients, clip the sum, and pass on an equal share each,
      which the optimizer's own cross-replica sum adds back up to the clipped gradient.
    """

    def __init__(self, *args, lr_multipliers: dict[str, float] | None = None, **kwargs):
        """Keras' AdamW arguments, and ``lr_multipliers``: learning-rate factors by variable path.

        Variables not named there train at the schedule's rate (layer-wise decay: see
        :func:`lr_multipliers`). Weight decay scales with each variable's rate.
        """
        super().__init__(*args, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})

    def build(self, variables):
        """Keras' slots, and each variable's learning-rate multiplier by its index."""
        super().build(variables)
        self._multipliers = [self.lr_multipliers.get(variable.path, 1.0) for variable in variables]

    def _multiplier(self, variable) -> float:
        """The multiplier of a built variable (Keras' or the backend's under a strategy)."""
        if not self.lr_multipliers:
            return 1.0
        return self._multipliers[self._get_variable_index(variable)]

    def get_config(self):
        """Keras' config plus the learning-rate multipliers."""
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}

    def apply(self, grads, trainable_variables=None):
        """Applies ``grads``; sparse (embedding) gradients are summed per row first."""
        return super().apply([_sum_rows(g) for g in grads], trainable_variables)

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if not self.global_clipnorm:
            return super()._clip_gradients(grads)
        if context is None or context.num_replicas_in_sync == 1:
            # TensorFlow's clipping reads and scales only the rows of sparse gradients.
            return tf.clip_by_global_norm(grads, self.global_clipnorm)[0]
        present = [index for index, grad in enumerate(grads) if grad is not None]
        total = context.all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(grads[i]) for i in present]
        )
        clipped, _ = tf.clip_by_global_norm(total, self.global_clipnorm)
        shares = list(grads)
        for index, grad in zip(present, clipped, strict=True):
            shares[index] = grad / context.num_replicas_in_sync
        return shares

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        keep = 1 - ops.cast(self.learning_rate, "float32") * self.weight_decay

        def decay(distribution, variables):
            for variable in variables:
                if self._use_weight_decay(variable):
                    value = variable.value if isinstance(variable, keras.Variable) else variable
                    multiplier = self._multiplier(variable)
                    factor = keep if multiplier == 1.0 else 1 - (1 - keep) * multiplier
                    distribution.extended.update(
                        value, lambda v, f=factor: v.assign(v * ops.cast(f, v.dtype)), group=False
                    )

        tf.__internal__.distribute.interim.maybe_merge_call(decay, self._distribution_strategy, variables)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' Adam step (bias-corrected step size, epsilon outside the root), fused."""
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        if isinstance(gradient, tf.IndexedSlices):  # Rows without gradient move too, as in PyTorch.
            shape = tf.shape(variable, out_type=gradient.indices.dtype)
            gradient = tf.scatter_nd(gradient.indices[:, None], gradient.values, shape)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        multiplier = self._multiplier(variable)
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=ops.power(ops.cast(self.beta_1, dtype), step),
            beta2_power=ops.power(ops.cast(self.beta_2, dtype), step),
            lr=ops.cast(learning_rate, dtype), beta1=ops.cast(self.beta_1, dtype),
            beta2=ops.cast(self.beta_2, dtype), epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype),
        )


def _sum_rows(gradient):
    """A sparse gradient with each row once (its slices summed), as a dense gradient has it."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


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


def lr_multipliers(depths: dict[str, int], decay: float, head_paths=(), head_multiplier: float = 1.0
                   ) -> dict[str, float]:
    """Learning-rate factors by variable path: layer-wise decay and the head's multiplier.

    Args:
        depths: Backbone variable path -> depth (:meth:`~tfft.backbones.Backbone.variable_depths`:
            embeddings 0 ... pooler, the top); each trains at ``decay ** (top depth - depth)``.
        decay: The factor per layer (1.0: none).
        head_paths: Paths of the task head's variables (those outside the backbone).
        head_multiplier: The head's factor (1.0: the schedule's rate).
    """
    multipliers = {}
    if decay != 1.0 and depths:
        top = max(depths.values())
        multipliers = {path: decay ** (top - depth) for path, depth in depths.items()}
    if head_multiplier != 1.0:
        multipliers.update(dict.fromkeys(head_paths, head_multiplier))
    return multipliers


def peak_learning_rate(trainer: TrainerConfig, width: int) -> float:
    """``trainer.learning_rate``, scaled by ``lr_reference_width / width`` when that is set.

    Args:
        trainer: The trainer config.
        width: The encoder's hidden size.
    """
    if not trainer.lr_reference_width:
        return trainer.learning_rate
    return trainer.learning_rate * trainer.lr_reference_width / width


def create_optimizer(trainer: TrainerConfig, total_steps: int, model: keras.Model,
                     backbone: Backbone | None = None):
    """AdamW for ``model`` with the configured schedule, decay, clipping and accumulation.

    Args:
        trainer: The trainer config.
        total_steps: Optimizer updates over the whole run.
        model: The model whose biases and LayerNorm variables are kept out of weight decay.
        backbone: The model's encoder, whose variable depths (``trainer.layer_decay``) and width
            (``trainer.lr_reference_width``) count; the model's other trainable variables are the
            head's (``trainer.head_lr_multiplier``). None: those settings are off.
    """
    accumulation = trainer.gradient_accumulation_steps
    depths = backbone.variable_depths() if backbone else {}
    head_paths = [variable.path for variable in model.trainable_variables if variable.path not in depths]
    peak = peak_learning_rate(trainer, backbone.hidden_size) if backbone else trainer.learning_rate
    if peak != trainer.learning_rate:
        logging.info("peak learning rate %.4g: trainer.learning_rate %.4g x lr_reference_width %d / "
                     "hidden size %d", peak, trainer.learning_rate, trainer.lr_reference_width,
                     backbone.hidden_size)
    schedule = WarmupLinearDecay(
        peak, math.ceil(trainer.warmup_fraction * total_steps), total_steps,
        accumulation,
    )
    optimizer = AdamW(
        learning_rate=schedule,
        weight_decay=trainer.weight_decay,
        beta_1=trainer.adam_beta_1,
        beta_2=trainer.adam_beta_2,
        epsilon=trainer.adam_epsilon,
        global_clipnorm=trainer.max_grad_norm or None,
        gradient_accumulation_steps=accumulation if accumulation > 1 else None,
        lr_multipliers=lr_multipliers(depths, trainer.layer_decay, head_paths, trainer.head_lr_multiplier),
    )
    optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer
