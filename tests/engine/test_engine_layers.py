"""Every layer and option of issue 2 item 1 against Keras on random weights and inputs: max |Δ| <= 1e-5.

Each case is one small Keras model (the layer under test, fed by an Embedding for sequence layers)
with random weights from ``randomize_weights``; the raw layer output is compared, not an argmax.
Unsupported layers and options must be refused with ``UnsupportedLayerError`` naming them.
"""
from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from engine_helpers import (EMB, PADDINGS, T, VOCAB, compare, padded_ids, randomize_weights, sequence_ids, sequence_model,
                            single_layer_model)

import scratch_models
from scratch_models import UnsupportedLayerError

L = keras.layers
RNG_SEED = 20240601


def rand_images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_single(layer, input_shape, x, seed=0, tol=1e-5):
    model = single_layer_model(layer, input_shape)
    randomize_weights(model, seed)
    return compare(model, x, tol)


# --------------------------------------------------------------------------------------- Conv2D
KERNELS = [1, 2, 3, 4, 5, 7]
CONV_STRIDES = [1, 2, 3, (1, 2), (3, 2)]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", CONV_STRIDES, ids=str)
@pytest.mark.parametrize("kernel", KERNELS)
def test_conv2d_kernel_stride_padding(kernel, strides, padding):
    # 11x13: odd sizes, so 'same' padding is asymmetric for even kernels and strides > 1.
    x = rand_images((3, 11, 13, 2), seed=kernel)
    check_single(L.Conv2D(4, kernel, strides=strides, padding=padding), (11, 13, 2), x, seed=kernel)


@pytest.mark.parametrize("kernel_size", [(1, 3), (4, 2), (7, 5)], ids=str)
def test_conv2d_rectangular_kernels(kernel_size):
    x = rand_images((2, 12, 9, 3), seed=1)
    check_single(L.Conv2D(5, kernel_size, padding="same"), (12, 9, 3), x)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu", "swish"])
def test_conv2d_bias_and_activation(activation, use_bias):
    x = rand_images((2, 9, 9, 3), seed=2)
    check_single(L.Conv2D(6, 3, padding="same", use_bias=use_bias, activation=activation), (9, 9, 3), x)


def test_conv2d_single_pixel_output_and_many_channels():
    """A 7x7x16 window (fan-in 784). With N(0, 0.5²) weights the outputs reach ~40, where one float32
    ulp is 4e-6 and summation order alone moves results by ~1e-5 (measured against float64: ours
    1.7e-5, Keras 0.7e-5). So the weights here are scaled to fan-in (0.05, outputs O(1-5)), as a
    trained model's are, and 1e-5 stays the bound; a float64 einsum checks both relative to scale."""
    x = rand_images((2, 7, 7, 16), seed=3)
    model = single_layer_model(L.Conv2D(32, 7, padding="valid"), (7, 7, 16))
    randomize_weights(model, 3, scale=0.05)
    compare(model, x)
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    exact = np.einsum("nijc,ijcf->nf", x.astype(np.float64), kernel) + bias
    ours = scratch_models.from_keras(model).predict(x)[:, 0, 0]
    assert np.abs(ours - exact).max() <= 1e-6 * max(1.0, np.abs(exact).max()) * 4


# -------------------------------------------------------------------------------------- Pooling
POOL_SIZES = [2, 3, (2, 3)]
POOL_STRIDES = [None, 1, 2, (1, 2)]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", POOL_STRIDES, ids=str)
@pytest.mark.parametrize("pool_size", POOL_SIZES, ids=str)
@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D], ids=lambda c: c.__name__)
def test_pooling2d(cls, pool_size, strides, padding):
    x = rand_images((3, 9, 11, 2), seed=4)  # odd sizes: 'same' adds a partial window
    check_single(cls(pool_size=pool_size, strides=strides, padding=padding), (9, 11, 2), x)


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D], ids=lambda c: c.__name__)
def test_pooling2d_exact_tiles(cls):
    x = rand_images((3, 8, 8, 4), seed=5)  # the 2x2/2 tiling fast path
    check_single(cls(pool_size=2), (8, 8, 4), x)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls", [L.GlobalMaxPooling2D, L.GlobalAveragePooling2D], ids=lambda c: c.__name__)
def test_global_pooling2d(cls, keepdims):
    x = rand_images((3, 5, 7, 4), seed=6)
    check_single(cls(keepdims=keepdims), (5, 7, 4), x)


# ------------------------------------------------------------------------ Flatten, Dense, BN
@pytest.mark.parametrize("shape", [(4, 5, 3), (7,), (2, 3)], ids=str)
def test_flatten(shape):
    check_single(L.Flatten(), shape, rand_images((3, *shape), seed=7))


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "softmax", "tanh"])
@pytest.mark.parametrize("shape", [(6,), (5, 6)], ids=["2d", "3d"])
def test_dense(shape, activation, use_bias):
    check_single(L.Dense(4, activation=activation, use_bias=use_bias), shape, rand_images((3, *shape), seed=8))


@pytest.mark.parametrize("center,scale", list(itertools.product([True, False], repeat=2)))
@pytest.mark.parametrize("shape", [(5, 6, 3), (7,)], ids=["4d", "2d"])
@pytest.mark.parametrize("epsilon", [1e-3, 0.1])
def test_batch_normalization_inference(shape, center, scale, epsilon):
    x = rand_images((4, *shape), seed=9) * 2 + 1
    layer = L.BatchNormalization(center=center, scale=scale, epsilon=epsilon)
    model = single_layer_model(layer, shape)
    randomize_weights(model, 9)
    moving_mean = layer.moving_mean.numpy()
    assert np.abs(moving_mean).max() > 0.1 and np.ptp(layer.moving_variance.numpy()) > 0.1  # non-trivial stats
    compare(model, x)


# ------------------------------------------------------------------------------- Activations
ACTIVATION_NAMES = ["linear", "relu", "tanh", "sigmoid", "softmax", "hard_sigmoid", "elu", "selu",
                    "softplus", "softsign", "swish", "silu", "exponential", "leaky_relu"]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_layer(name):
    rng = np.random.default_rng(10)
    x = rng.uniform(-4, 4, size=(4, 3, 9)).astype(np.float32)
    x[0, 0, :5] = [0.0, -3.0, 3.0, 1e-8, -1e-8]  # kinks of relu/hard_sigmoid/elu
    check_single(L.Activation(name), (3, 9), x)


def test_activation_large_magnitudes_stay_finite():
    x = np.array([[-100.0, -30.0, 0.0, 30.0, 100.0]], np.float32)
    for name in ["sigmoid", "tanh", "softmax", "softplus", "elu", "selu", "swish", "softsign", "hard_sigmoid"]:
        check_single(L.Activation(name), (5,), x)


@pytest.mark.parametrize("layer", [lambda: L.ReLU(), lambda: L.LeakyReLU(negative_slope=0.1), lambda: L.Softmax()],
                         ids=["ReLU", "LeakyReLU", "Softmax"])
def test_activation_classes(layer):
    check_single(layer(), (3, 6), rand_images((2, 3, 6), seed=11) * 3)


# -------------------------------------------------------------------------------- InputLayer
def test_input_layer_functional_fixed_batch_size_does_not_restrict():
    inp = keras.Input(shape=(6,), batch_size=4, name="fixed_in")
    model = keras.Model(inp, L.Dense(3)(inp))
    randomize_weights(model, 12)
    ours = scratch_models.from_keras(model)
    assert ours.input_shape == (None, 6) and ours.input_dtype == "float32"
    for n in (1, 4, 9):  # Keras' eager call is not bound by the declared batch size either
        compare(model, rand_images((n, 6), seed=n))


def test_input_layer_int_dtype_is_recorded():
    model = single_layer_model(L.Embedding(10, 3), (5,), dtype="int32")
    assert scratch_models.from_keras(model).input_dtype == "int32"


# ---------------------------------------------------------------------------------- Embedding
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_embedding(mask_zero, dtype):
    ids = padded_ids(np.random.default_rng(14), 5, 7, 20, "right").astype(dtype)
    check_single(L.Embedding(20, 4, mask_zero=mask_zero), (7,), ids)


def test_embedding_float_input_carrying_ids():
    # A float32 Input that feeds an Embedding (Keras casts it): ids given as floats.
    ids = padded_ids(np.random.default_rng(15), 4, 6, 12, "none")
    model = single_layer_model(L.Embedding(12, 3), (6,))
    randomize_weights(model, 15)
    compare(model, ids.astype(np.float32))


# ----------------------------------------------------------------------- SimpleRNN and LSTM
# PADDINGS, VOCAB, T, EMB, sequence_model and sequence_ids: engine_helpers.


@pytest.mark.parametrize("pattern", PADDINGS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fw", "bw"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM], ids=lambda c: c.__name__)
def test_recurrent_masking(cls, return_sequences, go_backwards, pattern):
    model = sequence_model(cls(4, return_sequences=return_sequences, go_backwards=go_backwards), pattern, 16)
    compare(model, sequence_ids(pattern, 16))


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu"), dict(activation="sigmoid"), dict(activation="linear"), dict(use_bias=False),
    dict(dropout=0.3, recurrent_dropout=0.2)], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_simple_rnn_options(kwargs):
    compare(sequence_model(L.SimpleRNN(5, return_sequences=True, **kwargs), "right", 17), sequence_ids("right", 17))


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu"), dict(recurrent_activation="hard_sigmoid"), dict(recurrent_activation="tanh"),
    dict(activation="softsign", recurrent_activation="sigmoid"), dict(use_bias=False),
    dict(unit_forget_bias=False), dict(dropout=0.3, recurrent_dropout=0.2)],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_lstm_options(kwargs):
    compare(sequence_model(L.LSTM(5, return_sequences=True, **kwargs), "left", 18), sequence_ids("left", 18))


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM], ids=lambda c: c.__name__)
def test_stacked_recurrent_float_input(cls):
    # No Embedding: a float (N, T, D) input straight into two stacked layers.
    model = keras.Sequential([keras.Input((9, 3)), cls(6, return_sequences=True), cls(4)])
    randomize_weights(model, 19)
    compare(model, rand_images((5, 9, 3), seed=19))


def test_recurrent_weights_follow_keras_gate_order():
    """A hand-computed LSTM step with distinct gate blocks: catches any i, f, c, o permutation."""
    u, d = 2, 3
    rng = np.random.default_rng(20)
    kernel, rec, bias = (rng.standard_normal(s).astype(np.float32) for s in [(d, 4 * u), (u, 4 * u), (4 * u,)])
    x = rng.standard_normal((1, 1, d)).astype(np.float32)
    z = x[0, 0] @ kernel + bias  # h0 = 0, c0 = 0

    def sig(v):
        return 1 / (1 + np.exp(-v))

    i, f, c_hat, o = sig(z[:u]), sig(z[u:2 * u]), np.tanh(z[2 * u:3 * u]), sig(z[3 * u:])
    expected = o * np.tanh(f * 0 + i * c_hat)
    model = keras.Sequential([keras.Input((1, d)), L.LSTM(u)])
    model.set_weights([kernel, rec, bias])
    ours = scratch_models.from_keras(model).predict(x)
    np.testing.assert_allclose(ours[0], expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x)), ours, atol=1e-6)


# ------------------------------------------------------------------------------ Bidirectional
@pytest.mark.parametrize("pattern", ["none", "right", "left", "middle"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM], ids=lambda c: c.__name__)
def test_bidirectional(cls, merge_mode, return_sequences, pattern):
    layer = L.Bidirectional(cls(4, return_sequences=return_sequences), merge_mode=merge_mode)
    compare(sequence_model(layer, pattern, 21), sequence_ids(pattern, 21))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_bidirectional_fully_padded_row(return_sequences):
    layer = L.Bidirectional(L.LSTM(3, return_sequences=return_sequences))
    compare(sequence_model(layer, "full", 22), sequence_ids("full", 22))


def test_bidirectional_explicit_backward_layer():
    layer = L.Bidirectional(L.LSTM(3, return_sequences=True),
                            backward_layer=L.SimpleRNN(3, return_sequences=True, go_backwards=True))
    compare(sequence_model(layer, "right", 23), sequence_ids("right", 23))


@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_stacked_bidirectional_masked(merge_mode):
    layers = [L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merge_mode),
              L.Bidirectional(L.SimpleRNN(3), merge_mode=merge_mode)]
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, EMB, mask_zero=True), *layers])
    randomize_weights(model, 24)
    compare(model, sequence_ids("middle", 24))


# ------------------------------------------------------------------------ 1-D global pooling
@pytest.mark.parametrize("pattern", ["none", "right", "left", "middle"])
@pytest.mark.parametrize("cls", [L.GlobalAveragePooling1D, L.GlobalMaxPooling1D], ids=lambda c: c.__name__)
def test_global_pooling1d(cls, pattern):
    compare(sequence_model(cls(), pattern, 25), sequence_ids(pattern, 25))


@pytest.mark.parametrize("cls", [L.GlobalAveragePooling1D, L.GlobalMaxPooling1D], ids=lambda c: c.__name__)
def test_global_pooling1d_after_masked_rnn(cls):
    model = sequence_model(L.LSTM(4, return_sequences=True), "right", 26, extra=[cls(), L.Dense(3, "softmax")])
    compare(model, sequence_ids("right", 26))


# ------------------------------------------------------------------------- identity layers
IDENTITY = {
    "Dropout": (lambda: L.Dropout(0.5), (5, 4)),
    "SpatialDropout1D": (lambda: L.SpatialDropout1D(0.3), (5, 4)),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.3), (5, 4, 3)),
    "GaussianNoise": (lambda: L.GaussianNoise(0.5), (5, 4)),
    "GaussianDropout": (lambda: L.GaussianDropout(0.3), (5, 4)),
    "AlphaDropout": (lambda: L.AlphaDropout(0.2), (5, 4)),
}


@pytest.mark.parametrize("name", list(IDENTITY))
def test_identity_layers(name):
    make, shape = IDENTITY[name]
    x = rand_images((3, *shape), seed=27)
    model = single_layer_model(make(), shape)
    compare(model, x, tol=0.0)
    np.testing.assert_array_equal(scratch_models.from_keras(model).predict(x), x)


@pytest.mark.parametrize("name", ["Dropout", "SpatialDropout1D", "GaussianNoise"])
def test_identity_layers_pass_the_mask(name):
    model = sequence_model(IDENTITY[name][0](), "left", 28, extra=[L.LSTM(3)])
    compare(model, sequence_ids("left", 28))


# ----------------------------------------------------------------------------- unsupported
def _bidirectional_merge_none():
    inp = keras.Input((T,), dtype="int32")
    pair_ = L.Bidirectional(L.SimpleRNN(3), merge_mode=None, name="bi_none")(L.Embedding(VOCAB, 4)(inp))
    return keras.Model(inp, L.Concatenate()(pair_)), "bi_none", "Bidirectional", "merge_mode"


def _stateful_lstm():
    model = keras.Sequential([keras.Input((T, 3), batch_size=2), L.LSTM(3, stateful=True, name="stateful_lstm")])
    return model, "stateful_lstm", "LSTM", "stateful"


UNSUPPORTED = {
    "Conv3D": lambda: (single_layer_model(L.Conv3D(2, 3, name="conv3d_x"), (5, 5, 5, 1)), "conv3d_x", "Conv3D",
                       "Conv3D"),
    "LSTM-stateful": _stateful_lstm,
    "Conv1D-channels_first": lambda: (single_layer_model(L.Conv1D(2, 3, data_format="channels_first", name="conv1d_cf"),
                                                         (2, 9)), "conv1d_cf", "Conv1D", "data_format"),
    "GRU-stateful": lambda: (keras.Sequential([keras.Input((5, 2), batch_size=2), L.GRU(2, stateful=True, name="gru_x")]),
                             "gru_x", "GRU", "stateful"),
    "Bidirectional-merge-None": _bidirectional_merge_none,
    "ConvLSTM2D": lambda: (single_layer_model(L.ConvLSTM2D(2, 3, name="convlstm"), (3, 6, 6, 1)), "convlstm",
                           "ConvLSTM2D", "ConvLSTM2D"),
    "MaxPooling2D-channels_first": lambda: (
        single_layer_model(L.MaxPooling2D(data_format="channels_first", name="cf_pool"), (2, 8, 8)),
        "cf_pool", "MaxPooling2D", "data_format"),
    "Dense-lora": lambda: (_lora_dense(), "lora_dense", "Dense", "lora_rank"),
}


def _lora_dense():
    model = single_layer_model(L.Dense(3, name="lora_dense"), (4,))
    model.layers[-1].enable_lora(2)
    return model


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_is_refused_with_names(case):
    model, layer_name, class_name, option = UNSUPPORTED[case]()
    with pytest.raises(UnsupportedLayerError) as info:
        scratch_models.from_keras(model)
    message = str(info.value)
    for part in (layer_name, class_name, option):
        assert part in message, f"{part!r} missing from {message!r}"
    assert (info.value.layer_name, info.value.class_name) == (layer_name, class_name)
