"""The hand-written pieces of the encoder layers."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.backbones.layers import exact_gelu


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gelu_and_its_gradient_match_pytorch(dtype):
    import torch

    values = np.linspace(-6.0, 6.0, 241, dtype=np.float32)
    upstream = np.cos(values)  # any upstream gradient
    x = tf.constant(values, dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = exact_gelu(x)
    gradient = tape.gradient(y, x, output_gradients=tf.constant(upstream, dtype=dtype))
    assert y.dtype == gradient.dtype == tf.as_dtype(dtype)
    reference = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.gelu(reference)
    expected.backward(torch.tensor(upstream, dtype=torch.float64))
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(tf.cast(y, tf.float32), expected.detach().numpy(), atol=tolerance)
    np.testing.assert_allclose(tf.cast(gradient, tf.float32), reference.grad.numpy(), atol=tolerance,
                               rtol=tolerance)
