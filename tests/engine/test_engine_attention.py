"""MultiHeadAttention (self- and cross-attention, key_dim/value_dim, padding masks, causal mask, use_bias,
output_shape), a TransformerEncoder-style block, and position embeddings built from ``keras.ops`` against
Keras on random weights and inputs: max |Δ| <= 1e-5 (issue 14 item 1)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import compare, padded_ids, randomize_weights
from keras import ops

L = keras.layers
T, VOCAB, D = 7, 23, 8


def ids(pattern, seed, n=5, t=T):
    return padded_ids(np.random.default_rng(seed), n, t, VOCAB, pattern)


def finish(inp, y, seed, scale=0.3):
    model = keras.Model(inp, y)
    randomize_weights(model, seed, scale=scale)
    return model


@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["dot_product_path", "softmax_layer_path"])
@pytest.mark.parametrize("pattern", ["none", "right", "left", "middle", "full"])
@pytest.mark.parametrize("heads,key_dim,value_dim", [(1, 4, None), (2, 3, 5), (4, 2, 2)], ids=str)
def test_self_attention_with_padding_mask(heads, key_dim, value_dim, pattern, dropout):
    """Embedding(mask_zero) -> MHA(x, x): the query and value masks from the padding (a fully padded row is
    uniform on Keras' dot-product path and zeros on its Softmax-layer path: both reproduced)."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D, mask_zero=pattern != "none")(inp)
    y = L.MultiHeadAttention(heads, key_dim, value_dim=value_dim, dropout=dropout)(x, x)
    compare(finish(inp, y, 40), ids(pattern, 40))


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("output_shape", [None, 6, (2, 3)], ids=str)
def test_attention_use_bias_and_output_shape(output_shape, use_bias):
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D)(inp)
    y = L.MultiHeadAttention(2, 4, use_bias=use_bias, output_shape=output_shape)(x, x)
    compare(finish(inp, y, 41), ids("none", 41))


@pytest.mark.parametrize("with_key", [False, True])
def test_cross_attention_different_lengths_and_widths(with_key):
    """Query from one branch (T steps, width 8), value/key from another (4 steps, widths 6 and 5)."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D)(inp)
    value = L.Dense(6)(x[:, 3:])
    key = L.Dense(5, activation="tanh")(x[:, :4]) if with_key else None
    mha = L.MultiHeadAttention(3, 4, value_dim=2)
    y = mha(x, value, key=key) if with_key else mha(x, value)
    compare(finish(inp, y, 42), ids("none", 42))


@pytest.mark.parametrize("pattern", ["right", "middle"])
def test_explicit_attention_mask_from_ops(pattern):
    """attention_mask = not_equal(ids, 0)[:, None, :] & ...: built from keras.ops nodes (NotEqual, ExpandDims)."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D)(inp)
    keep = ops.not_equal(inp, 0)
    mask = ops.logical_and(ops.expand_dims(keep, 1), ops.expand_dims(keep, 2))
    y = L.MultiHeadAttention(2, 4)(x, x, attention_mask=mask)
    compare(finish(inp, y, 43), ids(pattern, 43))


def test_causal_mask_with_padding():
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D, mask_zero=True)(inp)
    y = L.MultiHeadAttention(2, 4)(x, x, use_causal_mask=True)
    compare(finish(inp, y, 44), ids("left", 44))


def test_query_and_value_passed_by_name():
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D)(inp)
    y = L.MultiHeadAttention(2, 4)(query=x, value=L.Dense(5)(x))
    compare(finish(inp, y, 45), ids("none", 45))


def test_return_attention_scores_is_refused():
    from scratch_models import UnsupportedLayerError, from_keras
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D)(inp)
    y, scores = L.MultiHeadAttention(2, 4, name="mha_scores")(x, x, return_attention_scores=True)
    model = keras.Model(inp, y + ops.expand_dims(ops.mean(scores, axis=(1, 3)), -1))
    with pytest.raises(UnsupportedLayerError) as info:
        from_keras(model)
    assert "mha_scores" in str(info.value) and "return_attention_scores" in str(info.value)


# -------------------------------------------------------------------------- a transformer block
def position_embedding(x, t, d, name):
    """Token embedding + an Embedding of ``ops.arange(t)`` (Keras folds the positions' lookup into a
    constant tensor of the functional graph: the saved model holds it as an Add with a __tensor__)."""
    positions = L.Embedding(t, d, name=name)(ops.arange(0, t))
    return x + positions


def encoder_block(x, heads, key_dim, ff, mask_zero_seq=True, rate=0.1):
    att = L.MultiHeadAttention(heads, key_dim, dropout=rate)(x, x)
    x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(rate)(att)]))
    h = L.Dense(ff, activation="gelu")(x)
    h = L.Dense(x.shape[-1])(L.Dropout(rate)(h))
    return L.LayerNormalization(epsilon=1e-6)(x + h)


@pytest.mark.parametrize("pattern", ["none", "right"])
def test_transformer_encoder_block(pattern):
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, D, mask_zero=pattern != "none")(inp)
    x = encoder_block(x, 2, 4, 16)
    compare(finish(inp, x, 46), ids(pattern, 46))


def test_position_embedding_with_ops_nodes():
    """arange positions, slicing, expand_dims, reshape, matmul, mean and element-wise ops in one graph."""
    inp = keras.Input((T,), dtype="int32")
    x = position_embedding(L.Embedding(VOCAB, D)(inp), T, D, "pos")
    first = x[:, :1, :]                                   # GetItem with slices
    rest = ops.reshape(x[:, 1:], (-1, T - 1, D))          # Reshape
    sim = ops.matmul(rest, ops.transpose(first, (0, 2, 1)))  # Matmul, Transpose: (N, T-1, 1)
    pooled = ops.mean(rest * ops.sigmoid(sim), axis=1)   # Multiply, Sigmoid, Mean
    extra = ops.squeeze(ops.expand_dims(ops.sum(x, axis=-1), -1), -1)  # ExpandDims, Squeeze, Sum
    y = ops.concatenate([pooled, ops.tanh(extra) * 2.0 - 1.0, ops.max(x, axis=1)], axis=-1)
    compare(finish(inp, L.Dense(3, activation="softmax")(y), 47), ids("none", 47))
