"""AdamW with warmup/linear decay: the schedule against transformers, and decoupled weight decay."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfft import backbones
from tfft.config import TrainerConfig, task_config
from tfft.tasks import get_task
from tfft.training.optimizer import WarmupLinearDecay, create_optimizer, no_decay_variables


def transformers_schedule(peak: float, warmup: int, total: int, steps: int) -> list[float]:
    """Learning rates of ``get_linear_schedule_with_warmup`` (PyTorch) for steps 0 .. steps-1."""
    import torch
    import transformers

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=peak)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(("peak", "warmup", "total"), [(1e-3, 3, 10), (5e-5, 0, 6), (0.1, 4, 4), (2.0, 1, 7)])
def test_schedule_matches_transformers(peak, warmup, total):
    expected = transformers_schedule(peak, warmup, total, total + 3)
    schedule = WarmupLinearDecay(peak, warmup, total)
    actual = [float(schedule(step)) for step in range(total + 3)]
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-12)
    assert actual[-1] == 0.0  # past the end the rate stays at 0


def test_schedule_hand_values_and_config():
    schedule = WarmupLinearDecay(1.0, 2, 6)
    # 0, 1/2, then (6 - step) / 4 from step 2 on.
    np.testing.assert_allclose([float(schedule(s)) for s in range(8)], [0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0])
    clone = WarmupLinearDecay.from_config(schedule.get_config())
    assert clone.get_config() == {"peak": 1.0, "warmup_steps": 2, "total_steps": 6, "accumulation_steps": 1}


def test_schedule_counts_optimizer_updates_under_gradient_accumulation():
    """Keras passes the batch counter; with 2 batches per update each value holds for 2 batches."""
    schedule = WarmupLinearDecay(1.0, 2, 6, accumulation_steps=2)
    np.testing.assert_allclose([float(schedule(s)) for s in range(8)], [0, 0, 0.5, 0.5, 1, 1, 0.75, 0.75])


@pytest.fixture(scope="module")
def model(tiny_bert):
    backbone = backbones.from_pretrained(str(tiny_bert))
    return get_task(task_config(num_labels=3)).build_model(backbone, 0.1)


def layer_norm_variables(model) -> list:
    return [
        variable
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.LayerNormalization)
        for variable in layer.weights
    ]


def test_no_decay_variables(model):
    excluded = no_decay_variables(model)
    excluded_paths = [v.path for v in excluded]
    assert len(set(excluded_paths)) == len(excluded_paths)
    layer_norms = layer_norm_variables(model)
    # Embedding LayerNorm + 2 per encoder layer, each with gamma and beta.
    assert len(layer_norms) == 2 * (1 + 2 * 2)
    assert {v.name for v in layer_norms} == {"gamma", "beta"}
    biases = [v.path for v in model.trainable_variables if v.name == "bias"]
    # q, k, v, attention output, intermediate, output per layer; pooler; head.
    assert len(biases) == 6 * 2 + 2
    assert set(excluded_paths) == {v.path for v in layer_norms} | set(biases)
    decayed = [v for v in model.trainable_variables if v.path not in set(excluded_paths)]
    assert {v.name for v in decayed} == {"kernel", "embeddings"}
    assert len(decayed) + len(excluded) == len(model.trainable_variables)


def test_zero_gradient_step_applies_only_weight_decay(model):
    lr, wd = 0.1, 0.5
    trainer = TrainerConfig(learning_rate=lr, warmup_fraction=0.0, weight_decay=wd)
    optimizer = create_optimizer(trainer, total_steps=10, model=model)
    assert float(optimizer.learning_rate) == pytest.approx(lr)  # lr at step 0 is the peak
    variables = model.trainable_variables
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in variables}
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    excluded = {v.path for v in no_decay_variables(model)}
    decayed = 0
    for variable in variables:
        after = keras.ops.convert_to_numpy(variable)
        if variable.path in excluded:
            np.testing.assert_array_equal(after, before[variable.path], err_msg=variable.path)
        else:
            decayed += 1
            np.testing.assert_allclose(
                after, before[variable.path] * (1 - lr * wd), rtol=1e-6, atol=1e-9, err_msg=variable.path
            )
    assert decayed > 0 and len(excluded) > 0
    assert int(optimizer.iterations) == 1


def test_create_optimizer_settings(model):
    trainer = TrainerConfig(learning_rate=3e-5, warmup_fraction=0.1, weight_decay=0.01, adam_beta_1=0.8,
                            adam_beta_2=0.99, adam_epsilon=1e-6, max_grad_norm=1.0)
    optimizer = create_optimizer(trainer, total_steps=50, model=model)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, WarmupLinearDecay)
    assert (schedule.peak, schedule.warmup_steps, schedule.total_steps) == (3e-5, 5, 50)
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.8, 0.99, 1e-6)
    assert optimizer.global_clipnorm == 1.0
    no_clip = create_optimizer(TrainerConfig(max_grad_norm=0.0), total_steps=10, model=model)
    assert no_clip.global_clipnorm is None


def _embedding_steps(optimizer_class, steps: int = 3):
    """Three clipped AdamW steps on an embedding + dense model whose batch repeats tokens.

    Returns the TensorFlow weights after the steps, and PyTorch's AdamW with
    ``clip_grad_norm_`` on the same model, weights and batches.
    """
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    table, kernel = rng.normal(size=(12, 4)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    ids = np.array([[1, 1, 5, 7, 1], [5, 2, 2, 9, 1]])  # Repeated rows: several slices each.
    targets = rng.normal(size=(2, 3)).astype("float32")
    settings = dict(learning_rate=0.05, weight_decay=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    variables = [keras.Variable(table), keras.Variable(kernel)]
    optimizer = optimizer_class(**settings, global_clipnorm=0.5)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            hidden = tf.reduce_mean(tf.gather(variables[0], ids), axis=1)
            loss = tf.reduce_sum((tf.matmul(hidden, variables[1]) - targets) ** 2)
        grads = tape.gradient(loss, variables)
        assert isinstance(grads[0], tf.IndexedSlices)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
    parameters = [torch.nn.Parameter(torch.tensor(table)), torch.nn.Parameter(torch.tensor(kernel))]
    peer = torch.optim.AdamW(parameters, lr=settings["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=settings["weight_decay"])
    for _ in range(steps):
        peer.zero_grad()
        hidden = parameters[0][torch.tensor(ids)].mean(dim=1)
        loss = ((hidden @ parameters[1] - torch.tensor(targets)) ** 2).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 0.5)
        peer.step()
    return ([keras.ops.convert_to_numpy(v) for v in variables],
            [p.detach().numpy() for p in parameters])


def test_sparse_embedding_gradients_step_like_pytorch_adamw():
    """Repeated tokens count once per row in the clipping norm; untouched rows move like PyTorch's."""
    from tfft.training.optimizer import AdamW

    ours, torch_weights = _embedding_steps(AdamW)
    # Keras adds epsilon before the bias correction, PyTorch after: ~1e-6 apart here.
    for actual, expected in zip(ours, torch_weights, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    # Negative control: Keras' AdamW squares each slice for the norm, so repeated tokens
    # inflate it and the clipped steps differ from PyTorch's.
    keras_weights, _ = _embedding_steps(keras.optimizers.AdamW)
    assert np.abs(keras_weights[0] - torch_weights[0]).max() > 1e-4
