"""Functional graphs of issue 14 against Keras (max |Δ| <= 1e-5): ``return_state`` and ``initial_state`` for
SimpleRNN/LSTM/GRU (with Keras' mask rules), the merge layers on branches, Concatenate on any axis, and
``keras.ops`` nodes, each reproduced or refused by name; the graph survives the artifact round trip."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import compare, padded_ids, randomize_weights
from keras import ops

import scratch_models
from scratch_models import UnsupportedLayerError

L = keras.layers
T, VOCAB = 7, 20
RNNS = {"SimpleRNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU}


def ids(pattern, seed, n=6):
    return padded_ids(np.random.default_rng(seed), n, T, VOCAB, pattern)


def finish(inp, y, seed, scale=0.5):
    model = keras.Model(inp, y)
    randomize_weights(model, seed, scale=scale)
    return model


@pytest.mark.parametrize("pattern", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fw", "bw"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("name", list(RNNS))
def test_return_state(name, return_sequences, go_backwards, pattern):
    """[output, *states] of one layer, the states concatenated into the head (and the sequence pooled)."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 5, mask_zero=pattern != "none")(inp)
    out, *states = RNNS[name](4, return_state=True, return_sequences=return_sequences, go_backwards=go_backwards)(x)
    if return_sequences:
        out = L.GlobalAveragePooling1D()(out)
    compare(finish(inp, L.Concatenate()([out, *states]), 50), ids(pattern, 50))


@pytest.mark.parametrize("pattern", ["none", "right", "middle"])
@pytest.mark.parametrize("decoder", list(RNNS))
@pytest.mark.parametrize("encoder", list(RNNS))
def test_encoder_states_as_initial_state(encoder, decoder, pattern):
    """An encoder's final state starts a decoder over the same sequence (seq2seq shape); with several tensor
    arguments Keras passes the decoder no mask, which the engine follows."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 5, mask_zero=pattern != "none")(inp)
    _, *states = RNNS[encoder](4, return_state=True)(x)
    if (encoder == "LSTM") != (decoder == "LSTM"):  # LSTM states are (h, c); the others' (h,)
        states = [states[0]] * (2 if decoder == "LSTM" else 1)
    y = RNNS[decoder](4, return_sequences=True)(x, initial_state=states)
    compare(finish(inp, L.Dense(3, activation="softmax")(L.Flatten()(y)), 51), ids(pattern, 51))


def test_initial_state_with_explicit_mask():
    """An explicit mask= alongside initial_state is honoured (and becomes the output's mask)."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 5)(inp)
    keep = ops.not_equal(inp, 0)
    h0 = L.Dense(4, activation="tanh")(L.GlobalAveragePooling1D()(x))
    y = L.GRU(4, return_sequences=True)(x, initial_state=[h0], mask=keep)
    y = L.LSTM(3)(y)  # gets the GRU output's mask
    compare(finish(inp, y, 52), ids("right", 52))


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"])
def test_merge_layers_on_branches(merge):
    inp = keras.Input((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same")(inp)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(inp)[..., :4]
    y = getattr(L, merge)()([a, b])
    compare(finish(inp, L.GlobalAveragePooling2D()(y), 53),
            np.random.default_rng(53).standard_normal((3, 6, 6, 3)).astype(np.float32))


@pytest.mark.parametrize("axis", [1, 2, 3, -1, -2])
def test_concatenate_any_axis(axis):
    inp = keras.Input((4, 5, 3))
    a = L.Conv2D(3, 1)(inp)
    b = L.Conv2D(3, 1, activation="relu")(inp)
    y = L.Concatenate(axis=axis)([a, b, inp])
    compare(finish(inp, y, 54), np.random.default_rng(54).standard_normal((2, 4, 5, 3)).astype(np.float32))


def test_shared_gru_called_twice():
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 5)(inp)
    gru = L.GRU(4)
    y = L.Concatenate()([gru(x), gru(L.Dense(5)(x))])
    compare(finish(inp, y, 55), ids("none", 55))


def test_artifact_round_trip_keeps_kwargs_and_constants(tmp_path):
    """initial_state kwargs, a position-embedding constant (__tensor__), slices and op configs survive
    Model.to_json/from_json."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 5)(inp) + L.Embedding(T, 5)(ops.arange(0, T))
    _, h, c = L.LSTM(4, return_state=True)(x[:, 2:])
    y = L.LSTM(4)(x, initial_state=[h, c])
    y = ops.mean(ops.reshape(y, (-1, 2, 2)), axis=1)
    model = finish(inp, L.Dense(3, activation="softmax")(y), 56)
    ours = scratch_models.from_keras(model)
    again = scratch_models.Model.from_json(ours.to_json())
    again.set_weights(ours.get_weights())
    x_ids = ids("none", 56)
    np.testing.assert_array_equal(again(again.check_input(x_ids)), ours(ours.check_input(x_ids)))
    compare(model, x_ids)


UNSUPPORTED_OPS = {
    "Cast-float16": lambda x: ops.cast(x, "float16"), "Sort": lambda x: ops.sort(x, axis=-1),
    "Cumsum": lambda x: ops.cumsum(x, axis=1),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED_OPS))
def test_unsupported_ops_are_refused_by_name(case):
    inp = keras.Input((T, 3))
    y = UNSUPPORTED_OPS[case](L.Dense(3)(inp))
    model = keras.Model(inp, L.Dense(2)(ops.cast(y, "float32")))
    with pytest.raises(UnsupportedLayerError) as info:
        scratch_models.from_keras(model)
    assert case.split("-")[0] in str(info.value)


def test_bidirectional_return_state_is_refused():
    inp = keras.Input((T,), dtype="int32")
    out = L.Bidirectional(L.GRU(3, return_state=True), name="bi_state")(L.Embedding(VOCAB, 4)(inp))
    model = keras.Model(inp, L.Concatenate()(out))
    with pytest.raises(UnsupportedLayerError) as info:
        scratch_models.from_keras(model)
    assert "bi_state" in str(info.value) and "return_state" in str(info.value)


def test_saved_keras_file_round_trip(tmp_path):
    """The same graph from a saved .keras file (configs as JSON: lists, not tuples; the folded position
    embedding as a __tensor__): GRU with initial_state, MultiHeadAttention, LayerNormalization, Conv1D, ops."""
    inp = keras.Input((T,), dtype="int32")
    x = L.Embedding(VOCAB, 6, mask_zero=True)(inp) + L.Embedding(T, 6)(ops.arange(0, T))
    x = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(2, 3, output_shape=(6,))(x, x)]))
    _, h = L.GRU(4, return_state=True)(x)
    y = L.GRU(4, return_sequences=True, reset_after=False)(L.Conv1D(5, 3, padding="causal")(x), initial_state=[h])
    y = ops.mean(y[:, 1:], axis=1)
    model = finish(inp, L.Dense(3, activation="softmax")(y), 57, scale=0.3)
    path = tmp_path / "model.keras"
    model.save(path)
    ours = scratch_models.load_keras(path)
    x_ids = ids("right", 57)
    ref = np.asarray(model(x_ids, training=False))
    assert np.abs(ours.predict(x_ids) - ref).max() <= 1e-5


@pytest.mark.parametrize("which", ["cnn_blocks", "sequence"])
def test_scratch_artifact_of_new_layers(which, tmp_path):
    """scratch_models.artifact save/load (architecture JSON + weights) keeps every new layer's config."""
    from scratch_models import artifact
    if which == "cnn_blocks":
        inp = keras.Input((10, 10, 3))
        y = L.Rescaling(0.5, offset=-1.0)(inp)
        y = L.ZeroPadding2D(((0, 1), (1, 0)))(y)
        y = L.SeparableConv2D(6, 3, depth_multiplier=2, dilation_rate=2, padding="same")(y)
        y = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, use_bias=False)(y)
        y = L.ReLU(max_value=6.0)(L.Conv2D(6, 3, groups=3, dilation_rate=(1, 2), padding="same")(y))
        y = L.UpSampling2D((1, 2))(L.Cropping2D(((1, 0), (0, 1)))(y))
        y = L.Activation("hard_swish")(L.LayerNormalization(axis=(1, 2))(y))
        y = L.Reshape((-1, 6))(y)
        y = L.Permute((2, 1))(L.UnitNormalization()(y))
        out = L.Dense(3, activation="softmax")(L.Flatten()(y))
        x = np.random.default_rng(58).standard_normal((2, 10, 10, 3)).astype(np.float32)
    else:
        inp = keras.Input((T,), dtype="int32")
        y = L.Embedding(VOCAB, 6, mask_zero=True)(inp)
        y = L.MultiHeadAttention(2, 3, value_dim=2, output_shape=(5,))(y, y)
        y = L.Conv1D(4, 2, padding="causal", dilation_rate=2)(L.Masking()(y))
        y = L.AveragePooling1D(2, padding="same")(y)
        out = L.Dense(3, activation="softmax")(L.GRU(3, reset_after=False, go_backwards=True)(L.RepeatVector(3)(
            L.Flatten()(y))))
        x = ids("right", 58)
    model = finish(inp, out, 58, scale=0.3)
    ours = scratch_models.from_keras(model)
    artifact.save(ours, tmp_path / "a")
    again = artifact.load(tmp_path / "a")
    np.testing.assert_array_equal(again.predict(x), ours.predict(x))
    compare(model, x)
