"""Soft-target losses of knowledge distillation (Hinton et al. 2015), as tasks use them.

Each compares a student's outputs with a teacher's on the same batch: symbolic Keras ops,
float32, returning one value per row (or per token) that a task averages as its labels
allow (see :meth:`tfft.tasks.Task.distillation_loss`).
"""

from __future__ import annotations

from keras import ops


def softmax_kl(student_logits, teacher_logits, temperature: float, axis: int = -1):
    """KL(teacher || student) of the softmaxes at ``temperature`` over ``axis``, times its square.

    Scaled by the temperature squared, so that its gradients keep the size of the hard loss's
    whatever the temperature; 0 where the two agree.
    """
    teacher = ops.log_softmax(ops.cast(teacher_logits, "float32") / temperature, axis=axis)
    student = ops.log_softmax(ops.cast(student_logits, "float32") / temperature, axis=axis)
    return ops.sum(ops.exp(teacher) * (teacher - student), axis=axis) * temperature**2


def sigmoid_kl(student_logits, teacher_logits, temperature: float):
    """Per-label binary KL(teacher || student) of the sigmoids at ``temperature``, times its square."""
    teacher = ops.cast(teacher_logits, "float32") / temperature
    student = ops.cast(student_logits, "float32") / temperature
    teacher_on, teacher_off = ops.log_sigmoid(teacher), ops.log_sigmoid(-teacher)
    kl = (ops.exp(teacher_on) * (teacher_on - ops.log_sigmoid(student))
          + ops.exp(teacher_off) * (teacher_off - ops.log_sigmoid(-student)))
    return kl * temperature**2


def masked_mean(values, mask):
    """The mean of ``values`` where ``mask`` is true (0 where it is nowhere true)."""
    mask = ops.cast(mask, "float32")
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)
