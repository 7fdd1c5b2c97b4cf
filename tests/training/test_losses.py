"""Sparse categorical cross-entropy: value and gradient against Keras' loss and ``tf.GradientTape``,
from probabilities (clipped to [1e-7, 1 - 1e-7] as Keras) and from logits."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import TOLERANCE, rel_error

from scratch_models.losses import SparseCategoricalCrossentropy


def keras_value_and_gradient(y, scores, from_logits):
    """Keras' loss computes in its own ``dtype`` (floatx, float32, by default): given the scores'."""
    s = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(s)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, dtype=scores.dtype.name)(y, s)
    return float(loss), tape.gradient(loss, s).numpy()


def probabilities(rng, dtype):
    """Softmax rows, some with entries beyond the clip range (1e-9 and 1 - 2e-9) on both sides."""
    p = np.exp(rng.normal(0, 2, (12, 5)))
    p /= p.sum(1, keepdims=True)
    p[0] = [1 - 2e-9, 1e-9, 1e-9 / 2, 1e-9 / 4, 1e-9 / 4]
    p[1] = [1e-9, 1 - 1e-9, 0, 0, 0]
    return p.astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_matches_keras(from_logits, dtype, record_error):
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, (12, 5)).astype(dtype) if from_logits else probabilities(rng, dtype)
    y = rng.integers(0, 5, 12)
    y[:2] = [0, 0]  # the label on a clipped-high entry and on a clipped-low one
    loss_fn = SparseCategoricalCrossentropy(from_logits=from_logits)
    value, grad = keras_value_and_gradient(y, scores, from_logits)
    ours_value, ours_grad = loss_fn(y, scores), loss_fn.gradient(y, scores)
    assert ours_grad.dtype == np.dtype(dtype)
    errors = {"value": abs(ours_value - value) / abs(value), "gradient": rel_error(ours_grad, grad)}
    record_error(f"loss {dtype}", max(errors.values()))
    assert max(errors.values()) <= TOLERANCE[dtype], errors
    if not from_logits:  # outside the clip range the gradient is zero, as TensorFlow's clip_by_value
        assert (ours_grad[1, 2:] == 0).all() and (grad[1, 2:] == 0).all()
