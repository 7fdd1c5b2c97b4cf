"""Central finite differences in float64 (no reference framework): d sum(forward(x) * dout) by
perturbing every input and weight entry by ±h, against ``backward``; relative error <= 1e-7."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from training_helpers import TOLERANCE, floatx, randomize, rel_error, scratch_twin, trainable_keys

L = keras.layers
H = 1e-6


def numerical_gradient(f, a: np.ndarray) -> np.ndarray:
    """d f / d a by central differences, perturbing ``a`` in place."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + H
        up = f()
        a[i] = old - H
        down = f()
        a[i] = old
        grad[i] = (up - down) / (2 * H)
    return grad


CASES = {
    "conv_same_even_kernel_stride2": (lambda: L.Conv2D(3, 2, strides=2, padding="same", activation="tanh"), (2, 5, 5, 2), None),
    "maxpool_3_stride2_same": (lambda: L.MaxPooling2D(3, strides=2, padding="same"), (2, 5, 5, 2), None),
    "avgpool_3_stride1_same": (lambda: L.AveragePooling2D(3, strides=1, padding="same"), (1, 4, 4, 2), None),
    "batchnorm_training": (lambda: L.BatchNormalization(), (4, 3, 3, 2), None),
    "dense_3d_softmax": (lambda: L.Dense(4, activation="softmax"), (2, 3, 5), None),
    "lstm_masked_backwards_sequences": (lambda: L.LSTM(2, return_sequences=True, go_backwards=True), (2, 5, 3), "mask"),
    "bi_simplernn_mul_masked": (lambda: L.Bidirectional(L.SimpleRNN(2), merge_mode="mul"), (2, 5, 3), "mask"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_central_differences(case, record_error):
    make, shape, masked = CASES[case]
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    mask = None
    if masked:
        mask = np.ones(shape[:2], bool)
        mask[0, 3:] = False
        mask[1, :1] = False
    with floatx("float64"):
        klayer = make()
        klayer.build(shape)
    randomize(klayer, rng)
    layer = scratch_twin(klayer, shape, "float64")
    dout = rng.normal(size=layer.forward(x, mask=mask).shape)

    def f():
        return float((layer.forward(x, mask=mask, training=True) * dout).sum())

    layer.forward(x, mask=mask, training=True)
    dx = layer.backward(dout)
    analytic = {"dx": dx, **{k: layer.grads[k].copy() for k in trainable_keys(layer)}}
    numeric = {"dx": numerical_gradient(f, x)}
    for key in trainable_keys(layer):
        target = layer.weights[key]
        if hasattr(layer, "forward_layer"):  # Bidirectional: perturb the sub-layer's own array
            side, sub_key = key.split("/")
            target = getattr(layer, f"{side}_layer").weights[sub_key]
        numeric[key] = numerical_gradient(f, target)
    errors = {k: rel_error(analytic[k], numeric[k]) for k in analytic}
    record_error("finite differences float64", max(errors.values()))
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE["float64"]}
    assert not bad, f"relative errors above {TOLERANCE['float64']:g}: {bad}"
