"""Optimizer steps against Keras' optimizers applied to identical gradients: several steps on a few
parameters, every weight within 1e-6 (relative to its scale) of Keras'.

The weights start small (scale 1e-2) and the learning rate is 1e-2, so the comparison measures the
updates, not the starting values."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from training_helpers import rel_error

from scratch_models import optimizers

TOLERANCE = 1e-6
STEPS = 6
CONFIGS = {
    "sgd": ("SGD", {}),
    "sgd_momentum": ("SGD", {"momentum": 0.9}),
    "sgd_nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {}),
    "adam_amsgrad": ("Adam", {"amsgrad": True}),
    "adam_custom": ("Adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop_centered": ("RMSprop", {"centered": True}),
    "rmsprop_momentum": ("RMSprop", {"momentum": 0.9}),
    "rmsprop_centered_momentum_rho": ("RMSprop", {"centered": True, "momentum": 0.5, "rho": 0.8}),
}
SHAPES = [(3, 4), (5,), (2, 3, 2)]


def gradient_sequence(rng, dtype):
    """Per step, one gradient per parameter; scales vary (incl. ~epsilon) and one step is zero."""
    steps = []
    for t in range(STEPS):
        grads = [(rng.normal(size=s) * 10.0 ** rng.integers(-7, 1, s)).astype(dtype) for s in SHAPES]
        if t == 3:
            grads[1][:] = 0
        steps.append(grads)
    return steps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_optimizer_matches_keras(config, dtype, record_error):
    name, kwargs = CONFIGS[config]
    rng = np.random.default_rng(5)
    start = [(rng.normal(size=s) * 1e-2).astype(dtype) for s in SHAPES]
    ours = [w.copy() for w in start]
    theirs = [keras.Variable(w, dtype=dtype) for w in start]
    ours_opt = getattr(optimizers, name)(learning_rate=1e-2, **kwargs)
    keras_opt = getattr(keras.optimizers, name)(learning_rate=1e-2, **kwargs)
    worst = 0.0
    for grads in gradient_sequence(rng, dtype):
        ours_opt.step(ours, [g.copy() for g in grads])
        keras_opt.apply_gradients(zip([tf.constant(g) for g in grads], theirs))
        worst = max(worst, *(rel_error(a, b.numpy()) for a, b in zip(ours, theirs)))
    record_error(f"optimizers {dtype}", worst)
    assert all(w.dtype == np.dtype(dtype) for w in ours)
    assert worst <= TOLERANCE, worst


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_sparse_embedding_gradient_is_squared_row_by_row_as_keras(name, record_error):
    """TensorFlow's gradient of a gather is IndexedSlices; Keras' Adam/RMSprop square it per
    occurrence (``grad_squares``) while the first moment sums the rows."""
    ids = tf.constant([1, 1, 3])
    rows = np.array([[1.0, -1.0], [1.0, 2.0], [0.5, 0.25]], np.float32)
    variable = keras.Variable(np.zeros((4, 2), np.float32))
    getattr(keras.optimizers, name)(1e-3).apply_gradients(
        [(tf.IndexedSlices(tf.constant(rows), ids, tf.constant([4, 2])), variable)])
    dense, squares = np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)
    np.add.at(dense, ids.numpy(), rows)
    np.add.at(squares, ids.numpy(), rows * rows)
    ours = np.zeros((4, 2), np.float32)
    getattr(optimizers, name)(1e-3).step([ours], [dense], [squares])
    err = rel_error(ours, variable.numpy())
    record_error("optimizers float32", err)
    assert err <= TOLERANCE
    plain = np.zeros((4, 2), np.float32)
    getattr(optimizers, name)(1e-3).step([plain], [dense])
    assert rel_error(plain, variable.numpy()) > 1e-2  # the dense square is a different step
