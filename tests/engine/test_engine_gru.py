"""GRU (reset_after True/False, masking, go_backwards, return_sequences, inside Bidirectional) and Masking
against Keras on random weights and inputs: max |Δ| <= 1e-5 on the raw outputs (issue 14 item 1)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import PADDINGS, compare, randomize_weights, sequence_model
from engine_helpers import sequence_ids as ids

L = keras.layers


@pytest.mark.parametrize("pattern", PADDINGS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fw", "bw"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_gru_masking(reset_after, return_sequences, go_backwards, pattern):
    layer = L.GRU(4, reset_after=reset_after, return_sequences=return_sequences, go_backwards=go_backwards)
    compare(sequence_model(layer, pattern, 30), ids(pattern, 30))


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu"), dict(recurrent_activation="hard_sigmoid"), dict(activation="softsign"),
    dict(use_bias=False), dict(use_bias=False, reset_after=False), dict(dropout=0.3, recurrent_dropout=0.2),
    dict(use_cudnn=False)], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_gru_options(kwargs):
    compare(sequence_model(L.GRU(5, return_sequences=True, **kwargs), "right", 31), ids("right", 31))


def test_stacked_gru_float_input():
    model = keras.Sequential([keras.Input((9, 3)), L.GRU(6, return_sequences=True), L.GRU(4, reset_after=False)])
    randomize_weights(model, 32)
    compare(model, np.random.default_rng(32).standard_normal((5, 9, 3)).astype(np.float32))


def test_gru_hand_computed_step():
    """One step from h0 = 0 with distinct gate blocks (z, r, h) and both bias rows: catches a permutation."""
    u, d = 2, 3
    rng = np.random.default_rng(33)
    kernel, rec = rng.standard_normal((d, 3 * u)), rng.standard_normal((u, 3 * u))
    bias = rng.standard_normal((2, 3 * u))
    x = rng.standard_normal((1, 1, d))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    xz = x[0, 0] @ kernel + bias[0]
    inner = bias[1]  # h0 @ rec = 0
    z, r = sig(xz[:u] + inner[:u]), sig(xz[u:2 * u] + inner[u:2 * u])
    expected = (1 - z) * np.tanh(xz[2 * u:] + r * inner[2 * u:])
    model = keras.Sequential([keras.Input((1, d)), L.GRU(u)])
    model.set_weights([w.astype(np.float32) for w in (kernel, rec, bias)])
    import scratch_models
    ours = scratch_models.from_keras(model).predict(x.astype(np.float32))
    np.testing.assert_allclose(ours[0], expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), ours, atol=1e-6)


@pytest.mark.parametrize("pattern", ["none", "right", "left", "middle"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_bidirectional_gru(merge_mode, return_sequences, pattern):
    layer = L.Bidirectional(L.GRU(4, return_sequences=return_sequences), merge_mode=merge_mode)
    compare(sequence_model(layer, pattern, 34), ids(pattern, 34))


def test_bidirectional_gru_reset_before_with_lstm_backward():
    layer = L.Bidirectional(L.GRU(3, return_sequences=True, reset_after=False),
                            backward_layer=L.LSTM(3, return_sequences=True, go_backwards=True))
    compare(sequence_model(layer, "right", 35), ids("right", 35))


# ------------------------------------------------------------------------------------- Masking
def masked_floats(seed, n=5, t=8, d=3, mask_value=0.0):
    """Float sequences with whole time steps equal to ``mask_value`` (start, end and inside)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    x[0, 5:] = mask_value
    x[1, :2] = mask_value
    x[2, 3] = mask_value
    x[3, 1, 0] = mask_value  # one feature only: not masked
    return x


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
@pytest.mark.parametrize("cls", [L.GRU, L.LSTM, L.SimpleRNN], ids=lambda c: c.__name__)
def test_masking_into_recurrent(cls, mask_value):
    model = keras.Sequential([keras.Input((8, 3)), L.Masking(mask_value), cls(4, return_sequences=True),
                              cls(3)])
    randomize_weights(model, 36)
    compare(model, masked_floats(36, mask_value=mask_value))


def test_masking_output_and_mask_aware_pooling():
    model = keras.Sequential([keras.Input((8, 3)), L.Masking(), L.Dense(4), L.GlobalAveragePooling1D()])
    randomize_weights(model, 37)
    compare(model, masked_floats(37))
    alone = keras.Sequential([keras.Input((8, 3)), L.Masking(mask_value=-1.0)])
    compare(alone, masked_floats(38, mask_value=-1.0), tol=0.0)
