"""Categorical cross-entropy with label smoothing (the CNN recipe of issue 17): value and gradient
against Keras' ``CategoricalCrossentropy`` and ``tf.GradientTape``, from probabilities and logits,
one-hot and soft targets."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import TOLERANCE, rel_error

from scratch_models.losses import CategoricalCrossentropy


def keras_value_and_gradient(targets, scores, from_logits, label_smoothing):
    s = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(s)
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                                                    dtype=scores.dtype.name)(tf.constant(targets), s)
    return float(loss), tape.gradient(loss, s).numpy()


def scores_for(rng, from_logits, dtype):
    """Logits, or unnormalised positive scores whose rows Keras renormalises; two rows reach the clip range."""
    if from_logits:
        return rng.normal(0, 3, (12, 5)).astype(dtype)
    p = np.exp(rng.normal(0, 2, (12, 5))) * rng.uniform(0.5, 2.0, (12, 1))  # row sums != 1
    p[0] = [1 - 2e-9, 1e-9, 1e-9 / 2, 1e-9 / 4, 1e-9 / 4]
    return p.astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("soft", [False, True])
def test_categorical_crossentropy_matches_keras(from_logits, dtype, label_smoothing, soft):
    rng = np.random.default_rng(1)
    scores = scores_for(rng, from_logits, dtype)
    if soft:  # distillation targets: probability rows
        targets = rng.dirichlet(np.ones(5), 12).astype(dtype)
    else:
        targets = np.eye(5, dtype=dtype)[rng.integers(0, 5, 12)]
        targets[0] = np.eye(5, dtype=dtype)[1]  # the label on a clipped-low entry
    loss_fn = CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)
    value, grad = keras_value_and_gradient(targets, scores, from_logits, label_smoothing)
    ours_value, ours_grad = loss_fn(targets, scores), loss_fn.gradient(targets, scores)
    assert ours_grad.dtype == np.dtype(dtype)
    errors = {"value": abs(ours_value - value) / abs(value), "gradient": rel_error(ours_grad, grad)}
    assert max(errors.values()) <= TOLERANCE[dtype], errors


def test_label_smoothing_changes_the_loss_and_is_checked():
    scores = np.array([[0.7, 0.2, 0.1]])
    t = np.array([[1.0, 0.0, 0.0]])
    assert CategoricalCrossentropy(label_smoothing=0.1)(t, scores) > CategoricalCrossentropy()(t, scores)
    with pytest.raises(ValueError, match="label_smoothing"):
        CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="float targets"):
        CategoricalCrossentropy()(np.array([[1, 0, 0]]), scores)
    with pytest.raises(ValueError, match="one shape"):
        CategoricalCrossentropy()(np.array([[1.0, 0.0]]), scores)
