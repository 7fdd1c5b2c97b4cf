"""Helpers of the engine suite (a uniquely named module, so ``from engine_helpers import`` never picks
up another folder's conftest). Keras is the independent reference.

Every comparison builds a Keras model, gives it random non-trivial weights, converts it with
``scratch_models.from_keras`` and runs both on the same input (Keras through a direct eager call,
``model(x, training=False)``, which skips ``predict``'s per-call overhead).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", module=r"keras(\..*)?")
import keras  # noqa: E402

import scratch_models  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PEER_DIR = (REPO / ".." / "shared" / "fixtures" / "peer-models").resolve()
DATA_DIR = Path(os.environ.get("DATA_DIR") or (REPO / ".." / "shared" / "data")).resolve()
REPORTS = REPO / "reports"

#: The layer-by-layer tolerance of issue 2 (max |Δ| of raw outputs) and the model-level one (max |Δp|).
LAYER_TOL = 1e-5
MODEL_TOL = 1e-4


def randomize_weights(kmodel, seed: int, scale: float = 0.5) -> None:
    """Every Keras weight ~ N(0, scale²), moving variances ~ U(0.2, 2): biases and BN stats non-trivial."""
    rng = np.random.default_rng(seed)
    new = []
    for var in kmodel.weights:
        shape = tuple(var.shape)
        if "moving_variance" in var.path:
            new.append(rng.uniform(0.2, 2.0, shape).astype(np.float32))
        else:
            new.append((rng.standard_normal(shape) * scale).astype(np.float32))
    kmodel.set_weights(new)


def keras_out(kmodel, x) -> np.ndarray:
    """Keras' inference output for one batch, as a NumPy float32 array."""
    return np.asarray(kmodel(x, training=False), dtype=np.float32)


def compare(kmodel, x, tol: float = LAYER_TOL) -> float:
    """Convert ``kmodel``, run both on ``x``, assert shapes equal and max |Δ| <= tol; return max |Δ|."""
    ours = scratch_models.from_keras(kmodel).predict(x)
    ref = keras_out(kmodel, x)
    assert ours.shape == ref.shape, f"shape {ours.shape} != Keras {ref.shape}"
    assert np.isfinite(ref).all(), "the Keras reference is not finite: pick smaller weights"
    delta = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    assert delta <= tol, f"max |Δ| = {delta:.3g} > {tol:g}"
    return delta


def single_layer_model(layer, input_shape, dtype: str = "float32"):
    """keras.Sequential([Input(input_shape, dtype), layer])."""
    return keras.Sequential([keras.Input(shape=input_shape, dtype=dtype), layer])


def padded_ids(rng, n: int, t: int, vocab: int, pattern: str) -> np.ndarray:
    """Token ids (n, t) in [1, vocab) with zeros (padding) placed by ``pattern``.

    right: ids then zeros; left: zeros then ids; middle: zeros inside a row; full: row 0 all zeros
    (the rest right-padded); none: no zeros at all. Lengths vary per row (1..t).
    """
    ids = rng.integers(1, vocab, size=(n, t))
    lengths = rng.integers(1, t + 1, size=n)
    pos = np.arange(t)[None, :]
    if pattern == "right":
        ids[pos >= lengths[:, None]] = 0
    elif pattern == "left":
        ids[pos < (t - lengths)[:, None]] = 0
    elif pattern == "middle":
        holes = rng.random((n, t)) < 0.35
        holes[:, 0] = False  # at least one real token per row
        ids[holes] = 0
    elif pattern == "full":
        ids[pos >= lengths[:, None]] = 0
        ids[0] = 0
    elif pattern != "none":
        raise ValueError(pattern)
    return ids.astype(np.int32)


# ---------------------------------------------------------------- small models shared by several files
# Recurrent layers behind a (masking) Embedding: the shared set-up of the SimpleRNN/LSTM/GRU tests.
PADDINGS = ["none", "right", "left", "middle", "full"]
VOCAB, T, EMB = 17, 7, 5


def sequence_model(inner, pattern, seed, extra=()):
    """Embedding(mask_zero when padded) -> inner -> extra layers, int32 input of length T."""
    model = keras.Sequential([keras.Input(shape=(T,), dtype="int32"),
                              keras.layers.Embedding(VOCAB, EMB, mask_zero=pattern != "none"), inner, *extra])
    randomize_weights(model, seed)
    return model


def sequence_ids(pattern, seed, n=6):
    """(n, T) token ids in [1, VOCAB) zero-padded by ``pattern`` (see :func:`padded_ids`)."""
    return padded_ids(np.random.default_rng(seed), n, T, VOCAB, pattern)


def make_keras_cnn(seed: int = 100):
    """Conv2D + BN + pooling + Dense softmax on (16, 16, 3): the shape of the served CNN, smaller."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        L.Conv2D(8, 3, padding="same", activation="relu"), L.BatchNormalization(), L.MaxPooling2D(),
        L.Conv2D(12, 4, strides=2, padding="same", activation="relu"), L.AveragePooling2D(3, strides=1),
        L.Flatten(), L.Dropout(0.3), L.Dense(16, activation="relu"), L.Dense(10, activation="softmax")])
    randomize_weights(model, seed, scale=0.3)
    return model


TEXT_VOCAB, TEXT_T = 50, 20


def make_keras_text(seed: int = 101, bidirectional: bool = False):
    """Embedding(mask_zero) + (Bidirectional) LSTM + Dense softmax on int32 ids of length 20."""
    L = keras.layers
    rnn = L.LSTM(8)
    model = keras.Sequential([
        keras.Input((TEXT_T,), dtype="int32"), L.Embedding(TEXT_VOCAB, 6, mask_zero=True),
        L.Bidirectional(L.SimpleRNN(6, return_sequences=True)) if bidirectional else L.SpatialDropout1D(0.1),
        rnn, L.Dense(3, activation="softmax")])
    randomize_weights(model, seed, scale=0.3)
    return model
