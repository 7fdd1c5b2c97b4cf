"""Helpers of the training suite: Keras layers in a chosen float dtype, their scratch twins, and the
gradients of both for one upstream gradient (the oracle is ``tf.GradientTape``).

Relative error of an array ``a`` against the reference ``b``: ``max|a - b| / max|b|`` (the error
relative to the scale of the array, as CS231n's ``rel_error`` but robust to near-zero entries).
"""
from __future__ import annotations

import contextlib

import numpy as np

TOLERANCE = {"float64": 1e-7, "float32": 1e-4}


def check_gradient_errors(errors: dict, dtype: str, record_error, label: str) -> None:
    """Record the worst of ``errors`` (case -> relative error) under ``label`` and fail on any above the
    ``dtype`` tolerance, naming them all."""
    worst_key = max(errors, key=errors.get)
    record_error(f"{label} {dtype}", errors[worst_key])
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE[dtype]}
    assert not bad, f"relative errors above {TOLERANCE[dtype]:g}: {bad}"


def rel_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = np.abs(b).max() if b.size else 0.0
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


@contextlib.contextmanager
def floatx(dtype: str):
    """Keras layers created inside compute (and keep their weights) in ``dtype``. Both floatx and the
    global dtype policy are set: Keras caches the policy from floatx at the first layer it builds."""
    import keras
    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


def randomize(klayer, rng: np.random.Generator, scale: float = 0.5) -> None:
    """Random weights everywhere (non-zero biases too); variances stay positive."""
    new = []
    for w in klayer.weights:
        shape, name = tuple(w.shape), w.path
        if "moving_variance" in name:
            new.append(rng.uniform(0.5, 1.5, shape))
        elif "gamma" in name:
            new.append(rng.uniform(0.5, 1.5, shape))
        else:
            new.append(rng.normal(0, scale, shape))
    klayer.set_weights([np.asarray(v, klayer.weights[i].dtype) for i, v in enumerate(new)])


def scratch_twin(klayer, input_shape, dtype: str):
    """The scratch layer of a built Keras layer, with its weights, computing in ``dtype``."""
    from scratch_models.layers import layer_from_keras_config
    layer = layer_from_keras_config(type(klayer).__name__, klayer.get_config())
    layer.build((None, *input_shape[1:]))
    layer.astype(dtype)
    layer.set_weights(klayer.get_weights())
    return layer


def trainable_keys(layer) -> list[str]:
    return [k for k in layer.weights if not k.endswith(("moving_mean", "moving_variance"))]


def keras_gradients(klayer, x, dout, mask=None):
    """(output, d sum(output*dout)/d x or None for ids, [d/d w for Keras' trainable weights])."""
    import tensorflow as tf
    ids = np.asarray(x).dtype.kind in "iu"
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        if not ids:
            tape.watch(xt)
        kwargs = {} if mask is None else {"mask": tf.constant(mask)}
        y = klayer(xt, training=True, **kwargs)
        loss = tf.reduce_sum(y * tf.constant(dout, y.dtype))
    grads = tape.gradient(loss, ([] if ids else [xt]) + list(klayer.trainable_weights))
    grads = [tf.convert_to_tensor(g).numpy() for g in grads]
    return y.numpy(), (None if ids else grads[0]), (grads if ids else grads[1:])


def scratch_gradients(layer, x, dout, mask=None):
    y = layer.forward(x, mask=mask, training=True)
    dx = layer.backward(dout)
    return y, dx, [layer.grads[k] for k in trainable_keys(layer)]


def compare_layer(make_layer, x, dtype: str, mask=None, seed: int = 0) -> dict[str, float]:
    """Build ``make_layer()`` in Keras (floatx ``dtype``) and in scratch, run both on ``x`` in training
    mode with one random upstream gradient; return the relative errors of output, dx and each weight."""
    rng = np.random.default_rng(seed)
    if np.asarray(x).dtype.kind == "f":
        x = np.asarray(x, dtype)
    with floatx(dtype):
        klayer = make_layer()
        klayer.build(x.shape)
    assert klayer.compute_dtype == dtype, (klayer.compute_dtype, dtype)
    randomize(klayer, rng)
    layer = scratch_twin(klayer, x.shape, dtype)
    # The upstream gradient has the output's shape: one inference call gives it.
    probe = klayer(x, training=False, **({} if mask is None else {"mask": mask}))
    dout = rng.normal(size=tuple(probe.shape)).astype(dtype)
    y_k, dx_k, gw_k = keras_gradients(klayer, x, dout, mask)
    y_s, dx_s, gw_s = scratch_gradients(layer, x, dout, mask)
    assert y_s.dtype == np.dtype(dtype) and (dx_s is None or dx_s.dtype == np.dtype(dtype)), (y_s.dtype, getattr(dx_s, "dtype", None))
    errors = {"output": rel_error(y_s, y_k)}
    if dx_k is not None:
        errors["dx"] = rel_error(dx_s, dx_k)
    assert len(gw_s) == len(gw_k), (trainable_keys(layer), [w.path for w in klayer.trainable_weights])
    for key, a, b in zip(trainable_keys(layer), gw_s, gw_k):
        assert a.dtype == np.dtype(dtype), (key, a.dtype)
        errors[key] = rel_error(a, b)
    return errors
