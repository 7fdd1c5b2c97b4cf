"""Conv1D (valid/same/causal, strides, dilation, groups), Max/AveragePooling1D and the global 1-D poolings
(mask-aware where Keras is) against Keras on random weights and inputs: max |Δ| <= 1e-5 (issue 14 item 1)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import compare, padded_ids, randomize_weights, single_layer_model

L = keras.layers


def seq(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check(layer, input_shape, x, seed=0, tol=1e-5):
    model = single_layer_model(layer, input_shape)
    randomize_weights(model, seed)
    return compare(model, x, tol)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3)], ids=str)
@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
def test_conv1d(kernel, strides, dilation, padding):
    check(L.Conv1D(4, kernel, strides=strides, dilation_rate=dilation, padding=padding), (13, 3), seq((3, 13, 3), kernel),
          seed=kernel)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "softmax"])
def test_conv1d_activation_and_bias(activation, use_bias):
    check(L.Conv1D(5, 3, padding="same", activation=activation, use_bias=use_bias), (9, 4), seq((2, 9, 4), 7), seed=7)


@pytest.mark.parametrize("groups", [2, 3])
def test_conv1d_groups(groups):
    check(L.Conv1D(6, 3, groups=groups, padding="causal"), (10, 6), seq((2, 10, 6), 8), seed=8)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool,strides", [(2, None), (3, None), (3, 1), (2, 3), (4, 2)], ids=str)
@pytest.mark.parametrize("cls", [L.MaxPooling1D, L.AveragePooling1D], ids=lambda c: c.__name__)
def test_pooling1d(cls, pool, strides, padding):
    check(cls(pool, strides=strides, padding=padding), (11, 3), seq((3, 11, 3), 9))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls", [L.GlobalMaxPooling1D, L.GlobalAveragePooling1D], ids=lambda c: c.__name__)
def test_global_pooling1d_keepdims(cls, keepdims):
    check(cls(keepdims=keepdims), (7, 4), seq((3, 7, 4), 10))


@pytest.mark.parametrize("pattern", ["right", "left", "middle"])
@pytest.mark.parametrize("cls", [L.GlobalMaxPooling1D, L.GlobalAveragePooling1D], ids=lambda c: c.__name__)
def test_global_pooling1d_after_masked_embedding(cls, pattern):
    """Keras' GlobalAveragePooling1D averages over the unmasked steps; GlobalMaxPooling1D ignores the mask."""
    model = keras.Sequential([keras.Input((9,), dtype="int32"), L.Embedding(20, 4, mask_zero=True), L.Dense(5),
                              cls(), L.Dense(3, activation="softmax")])
    randomize_weights(model, 11)
    compare(model, padded_ids(np.random.default_rng(11), 6, 9, 20, pattern))


def test_conv1d_stack_text_classifier_shape():
    """Embedding -> Conv1D -> MaxPooling1D -> Conv1D(causal, dilated) -> GlobalMaxPooling1D -> Dense."""
    model = keras.Sequential([keras.Input((16,), dtype="int32"), L.Embedding(30, 6), L.Conv1D(8, 3, activation="relu"),
                              L.MaxPooling1D(2), L.Conv1D(6, 2, padding="causal", dilation_rate=2, activation="relu"),
                              L.GlobalMaxPooling1D(), L.Dense(3, activation="softmax")])
    randomize_weights(model, 12, scale=0.3)
    compare(model, padded_ids(np.random.default_rng(12), 5, 16, 30, "right"))
