"""AdamW with warmup/linear decay: the schedule against transformers, and decoupled weight decay."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfft import backbones
from tfft.config import TrainerConfig, task_config
from tfft.errors import TfftError
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


def test_learning_rate_scales_with_width_when_a_reference_width_is_set(model, caplog):
    """lr_reference_width=768: a 32-wide encoder trains at 24x, a 1024-wide one at 0.75x the rate."""
    import logging

    from tfft.training.optimizer import peak_learning_rate

    backbone = next(layer for layer in model.layers if isinstance(layer, backbones.Backbone))
    assert backbone.hidden_size == 32
    trainer = TrainerConfig(learning_rate=2e-5, lr_reference_width=768)
    with caplog.at_level(logging.INFO):
        optimizer = create_optimizer(trainer, 10, model, backbone)
    assert optimizer._learning_rate.peak == pytest.approx(4.8e-4)
    assert ("peak learning rate 0.00048: trainer.learning_rate 2e-05 x lr_reference_width 768 / "
            "hidden size 32") in caplog.text
    assert peak_learning_rate(trainer, 1024) == pytest.approx(1.5e-5)
    assert peak_learning_rate(TrainerConfig(learning_rate=2e-5), 32) == 2e-5  # 0: as given.


def _embedding_steps(optimizer_class, steps: int = 3, multipliers: tuple[float, float] = (1.0, 1.0)):
    """Three clipped AdamW steps on an embedding + dense model whose batch repeats tokens.

    Returns the TensorFlow weights after the steps, and PyTorch's AdamW with
    ``clip_grad_norm_`` on the same model, weights and batches. ``multipliers`` scale the
    learning rate of the table and the kernel (PyTorch: one parameter group each).
    """
    import tensorflow as tf
    import torch

    rng = np.random.default_rng(0)
    table, kernel = rng.normal(size=(12, 4)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    ids = np.array([[1, 1, 5, 7, 1], [5, 2, 2, 9, 1]])  # Repeated rows: several slices each.
    targets = rng.normal(size=(2, 3)).astype("float32")
    settings = dict(learning_rate=0.05, weight_decay=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    variables = [keras.Variable(table, name="table"), keras.Variable(kernel, name="kernel")]
    named = dict(zip(("table", "kernel"), multipliers, strict=True))
    extra = {} if multipliers == (1.0, 1.0) else {"lr_multipliers": named}
    optimizer = optimizer_class(**settings, global_clipnorm=0.5, **extra)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            hidden = tf.reduce_mean(tf.gather(variables[0], ids), axis=1)
            loss = tf.reduce_sum((tf.matmul(hidden, variables[1]) - targets) ** 2)
        grads = tape.gradient(loss, variables)
        assert isinstance(grads[0], tf.IndexedSlices)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
    parameters = [torch.nn.Parameter(torch.tensor(table)), torch.nn.Parameter(torch.tensor(kernel))]
    groups = [{"params": [parameter], "lr": settings["learning_rate"] * multiplier}
              for parameter, multiplier in zip(parameters, multipliers, strict=True)]
    peer = torch.optim.AdamW(groups, lr=settings["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
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


def test_layer_wise_learning_rates_step_like_pytorch_parameter_groups():
    """Each variable's rate (and its weight decay) scaled, as a PyTorch group with that lr."""
    from tfft.training.optimizer import AdamW

    ours, torch_weights = _embedding_steps(AdamW, multipliers=(0.25, 1.0))
    for actual, expected in zip(ours, torch_weights, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    plain, _ = _embedding_steps(AdamW)
    assert np.abs(plain[0] - ours[0]).max() > 1e-3  # Negative control: the multiplier mattered.


def test_layer_decay_and_head_multipliers(model):
    from tfft.training.optimizer import lr_multipliers

    backbone = next(layer for layer in model.layers if isinstance(layer, backbones.Backbone))
    depths = backbone.variable_depths()
    multipliers = lr_multipliers(depths, 0.5)
    by_part = {}
    for path, multiplier in multipliers.items():
        depth = depths[path]
        part = "embeddings" if depth == 0 else "pooler" if depth == 3 else f"layer{depth}"
        by_part.setdefault(part, set()).add(multiplier)
    assert by_part == {"pooler": {1.0}, "layer2": {0.5}, "layer1": {0.25}, "embeddings": {0.125}}
    assert set(depths) == {v.path for v in backbone.weights}
    head = [v for v in model.trainable_variables if v.path not in depths]
    embeddings = next(v for v in model.trainable_variables if depths.get(v.path) == 0)
    pooler = next(v for v in model.trainable_variables if depths.get(v.path) == 3)
    for head_multiplier in (1.0, 20.0):
        trainer = TrainerConfig(layer_decay=0.5, head_lr_multiplier=head_multiplier)
        optimizer = create_optimizer(trainer, 10, model, backbone)
        optimizer.build(model.trainable_variables)
        assert head and {optimizer._multiplier(v) for v in head} == {head_multiplier}
        assert optimizer._multiplier(embeddings) == 0.125 and optimizer._multiplier(pooler) == 1.0
    assert lr_multipliers(depths, 1.0) == {}
    only_head = lr_multipliers(depths, 1.0, [v.path for v in head], 10.0)
    assert only_head == {v.path: 10.0 for v in head}


def test_reinitialized_top_layers_are_drawn_afresh(tiny_bert):
    backbone = backbones.from_pretrained(str(tiny_bert))
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in backbone.weights}
    backbone.reinitialize_top_layers(1)
    depths = backbone.variable_depths()
    for variable in backbone.weights:
        value, depth = keras.ops.convert_to_numpy(variable), depths[variable.path]
        if depth < 2:  # Embeddings and the bottom layer keep the checkpoint's weights.
            np.testing.assert_array_equal(value, before[variable.path], err_msg=variable.path)
        elif variable.name in ("bias", "beta"):
            np.testing.assert_array_equal(value, 0.0, err_msg=variable.path)
        elif variable.name == "gamma":
            np.testing.assert_array_equal(value, 1.0, err_msg=variable.path)
        else:  # Kernels: N(0, initializer_range = 0.02), not the checkpoint's.
            assert not np.allclose(value, before[variable.path]) and 0.01 < value.std() < 0.03, variable.path
    with pytest.raises(TfftError, match=r"^trainer.reinit_top_layers=2 would redraw every one of the "
                                        r"encoder's 2 distinct layers; set it below that \(or 0\)$"):
        backbone.reinitialize_top_layers(2)


def test_a_run_with_layer_decay_and_reinitialized_layers(tiny_bert, sentiment_data, tmp_path):
    """One step from the checkpoint: each part moves by at most its own rate (Adam's first step)."""
    from conftest import restored_model, run_train

    train, dev = sentiment_data
    settings = (f"task.init_checkpoint={tiny_bert},task.train_data.input_path={train},"
                f"task.train_data.max_examples=8,task.validation_data.input_path={dev},trainer.train_batch_size=8,trainer.epochs=1,"
                "trainer.warmup_fraction=0,trainer.weight_decay=0,trainer.learning_rate=0.01,"
                "task.max_seq_length=32,trainer.layer_decay=0.5,trainer.reinit_top_layers=1,"
                "trainer.lr_reference_width=16")  # The 32-wide encoder trains at half the rate.
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'run'}", "--mode=train",
              f"--params_override={settings}")
    trained = next(layer for layer in restored_model(tmp_path / "run")[0].layers
                   if isinstance(layer, backbones.Backbone))
    pretrained = backbones.from_pretrained(str(tiny_bert))
    start = {v.path: keras.ops.convert_to_numpy(v) for v in pretrained.weights}
    depths = trained.variable_depths()
    moved = {}
    for variable in trained.weights:
        if depths[variable.path] < 2:  # Pretrained parts: Adam's first step is at most lr x multiplier.
            step = np.abs(keras.ops.convert_to_numpy(variable) - start[variable.path]).max()
            moved[depths[variable.path]] = max(moved.get(depths[variable.path], 0.0), step)
    assert moved[0] == pytest.approx(0.005 * 0.125, rel=1e-3)  # Embeddings: 0.5 ** 3.
    assert moved[1] == pytest.approx(0.005 * 0.25, rel=1e-3)  # The bottom layer: 0.5 ** 2.
    failed = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'bad'}",
                       f"--params_override={settings},trainer.layer_decay=1.5", check=False)
    assert failed.stderr.endswith("tfft-train: error: trainer.layer_decay must be in (0, 1], got 1.5; "
                                  "1.0 turns it off\n")
    failed = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'bad'}",
                       f"--params_override={settings},trainer.lr_reference_width=-1", check=False)
    assert failed.stderr.endswith(
        "tfft-train: error: trainer.lr_reference_width must be at least 0, got -1\n")
    failed = run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / 'bad'}",
                       f"--params_override={settings},trainer.head_lr_multiplier=0", check=False)
    assert failed.stderr.endswith("tfft-train: error: trainer.head_lr_multiplier must be positive, got 0.0; "
                                  "1.0 turns it off\n")
