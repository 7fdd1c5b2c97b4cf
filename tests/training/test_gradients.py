"""The gradient of every layer and option against ``tf.GradientTape`` on the same weights and input,
in float64 (relative error <= 1e-7) and float32 (<= 1e-4): output, d input and d every weight for
one random upstream gradient, layers in training mode."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from training_helpers import TOLERANCE, check_gradient_errors, compare_layer

L = keras.layers
DTYPES = ["float64", "float32"]
RNG = np.random.default_rng(42)


def image(n=2, h=7, w=7, c=3):
    return RNG.normal(size=(n, h, w, c))


def sequence(n=3, t=6, d=4):
    return RNG.normal(size=(n, t, d))


def step_mask(n=3, t=6):
    """Padding at the end, at the start, and a hole in the middle; every row keeps a step."""
    m = np.ones((n, t), bool)
    m[0, 4:] = False
    m[1, :2] = False
    if n > 2:
        m[2, 2:4] = False
    return m


CASES = {
    # Conv2D: padding, strides, odd and even kernels, activations, no bias.
    "conv_valid_3x3": (lambda: L.Conv2D(4, 3), image),
    "conv_same_3x3_relu": (lambda: L.Conv2D(4, 3, padding="same", activation="relu"), image),
    "conv_same_even_2x2_stride2": (lambda: L.Conv2D(3, 2, strides=2, padding="same"), image),
    "conv_same_even_4x4_stride3": (lambda: L.Conv2D(2, 4, strides=3, padding="same", activation="tanh"), lambda: image(2, 8, 7)),
    "conv_valid_2x3_stride_2x1_nobias_sigmoid": (lambda: L.Conv2D(3, (2, 3), strides=(2, 1), use_bias=False, activation="sigmoid"), image),
    "conv_valid_1x1": (lambda: L.Conv2D(5, 1, activation="elu"), image),
    # Pooling: tiling, overlapping strides, 'same' with odd sizes.
    "maxpool_2": (lambda: L.MaxPooling2D(2), lambda: image(2, 6, 6)),
    "maxpool_2_odd_valid": (lambda: L.MaxPooling2D(2), image),
    "maxpool_2_same_odd": (lambda: L.MaxPooling2D(2, padding="same"), image),
    "maxpool_3_stride2_overlap": (lambda: L.MaxPooling2D(3, strides=2), image),
    "maxpool_3_stride2_same": (lambda: L.MaxPooling2D(3, strides=2, padding="same"), lambda: image(2, 8, 7)),
    "maxpool_2x3_stride1": (lambda: L.MaxPooling2D((2, 3), strides=1), image),
    "avgpool_2": (lambda: L.AveragePooling2D(2), lambda: image(2, 6, 6)),
    "avgpool_2_same_odd": (lambda: L.AveragePooling2D(2, padding="same"), image),
    "avgpool_3_stride1_same": (lambda: L.AveragePooling2D(3, strides=1, padding="same"), image),
    "avgpool_3_stride2_overlap": (lambda: L.AveragePooling2D(3, strides=2), image),
    "avgpool_3_stride2_same": (lambda: L.AveragePooling2D(3, strides=2, padding="same"), lambda: image(2, 8, 7)),
    "global_max_2d": (lambda: L.GlobalMaxPooling2D(), image),
    "global_max_2d_keepdims": (lambda: L.GlobalMaxPooling2D(keepdims=True), image),
    "global_avg_2d": (lambda: L.GlobalAveragePooling2D(), image),
    "global_avg_2d_keepdims": (lambda: L.GlobalAveragePooling2D(keepdims=True), image),
    "global_max_1d": (lambda: L.GlobalMaxPooling1D(), sequence),
    "global_avg_1d": (lambda: L.GlobalAveragePooling1D(), sequence),
    "flatten": (lambda: L.Flatten(), image),
    # Dense on 2-D and 3-D inputs, activations; the activation layers.
    "dense_2d": (lambda: L.Dense(5), lambda: RNG.normal(size=(4, 6))),
    "dense_2d_softmax": (lambda: L.Dense(5, activation="softmax"), lambda: RNG.normal(size=(4, 6))),
    "dense_3d_relu": (lambda: L.Dense(5, activation="relu"), sequence),
    "dense_3d_nobias_tanh": (lambda: L.Dense(3, activation="tanh", use_bias=False), sequence),
    **{f"activation_{a}": ((lambda a=a: L.Activation(a)), sequence)
       for a in ("relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign", "swish",
                 "hard_sigmoid", "exponential", "leaky_relu", "linear")},
    "relu_layer": (lambda: L.ReLU(), sequence),
    "leaky_relu_layer": (lambda: L.LeakyReLU(negative_slope=0.1), sequence),
    "softmax_layer": (lambda: L.Softmax(), sequence),
    # BatchNormalization in training mode (batch statistics), 2-D and 4-D, without scale/center.
    "batchnorm_4d": (lambda: L.BatchNormalization(), image),
    "batchnorm_2d": (lambda: L.BatchNormalization(momentum=0.9, epsilon=1e-2), lambda: RNG.normal(size=(8, 5))),
    "batchnorm_3d_noscale_nocenter": (lambda: L.BatchNormalization(scale=False, center=False), sequence),
    # Embedding: only the rows used get gradient (summed over repeats).
    "embedding": (lambda: L.Embedding(12, 4), lambda: RNG.integers(0, 6, (3, 7))),
    "embedding_mask_zero": (lambda: L.Embedding(12, 4, mask_zero=True), lambda: RNG.integers(0, 12, (3, 7))),
}


def recurrent_cases():
    """SimpleRNN and LSTM x return_sequences x go_backwards x mask; a relu SimpleRNN and a
    hard_sigmoid LSTM; Bidirectional in every merge mode, with and without sequences."""
    cases = {}
    for cell in ("SimpleRNN", "LSTM"):
        for seq in (False, True):
            for back in (False, True):
                for masked in (False, True):
                    cases[f"{cell}_seq{int(seq)}_back{int(back)}_mask{int(masked)}"] = (
                        (lambda cell=cell, seq=seq, back=back: getattr(L, cell)(3, return_sequences=seq, go_backwards=back)),
                        sequence, masked)
    cases["SimpleRNN_relu_nobias_masked"] = (lambda: L.SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True), sequence, True)
    cases["LSTM_hard_sigmoid_masked"] = (lambda: L.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True), sequence, True)
    for merge in ("concat", "sum", "ave", "mul"):
        for seq in (False, True):
            cases[f"bi_lstm_{merge}_seq{int(seq)}_masked"] = (
                (lambda merge=merge, seq=seq: L.Bidirectional(L.LSTM(3, return_sequences=seq), merge_mode=merge)), sequence, True)
        cases[f"bi_simplernn_{merge}_seq1"] = (
            (lambda merge=merge: L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode=merge)), sequence, False)
    return cases


RECURRENT = recurrent_cases()


def check(errors: dict, dtype: str, record_error) -> None:
    check_gradient_errors(errors, dtype, record_error, "layer gradients")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_gradient_matches_gradient_tape(case, dtype, record_error):
    make, data = CASES[case]
    errors = compare_layer(make, data(), dtype)
    check(errors, dtype, record_error)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(RECURRENT))
def test_recurrent_gradient_matches_gradient_tape(case, dtype, record_error):
    make, data, masked = RECURRENT[case]
    x = data()
    errors = compare_layer(make, x, dtype, mask=step_mask(len(x), x.shape[1]) if masked else None)
    check(errors, dtype, record_error)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_moving_statistics_follow_keras(dtype, record_error):
    """Three training-mode calls: the moving mean and (biased) variance move as Keras' do."""
    from training_helpers import floatx, randomize, scratch_twin
    rng = np.random.default_rng(3)
    batches = [rng.normal(1.5, 2.0, (6, 4, 4, 3)).astype(dtype) for _ in range(3)]
    with floatx(dtype):
        klayer = L.BatchNormalization(momentum=0.8)
        klayer.build(batches[0].shape)
    randomize(klayer, rng)
    layer = scratch_twin(klayer, batches[0].shape, dtype)
    for x in batches:
        klayer(x, training=True)
        layer.forward(x, training=True)
    for key, ours, theirs in zip(layer.weights, layer.get_weights(), klayer.get_weights()):
        err = np.abs(ours - theirs).max() / np.abs(theirs).max()
        record_error(f"batchnorm moving stats {dtype}", err)
        assert err <= TOLERANCE[dtype], (key, err)
    assert not np.allclose(layer.weights["moving_mean"], 0)  # they did move


def test_embedding_gradient_only_for_used_rows():
    from training_helpers import scratch_twin
    klayer = L.Embedding(10, 3)
    klayer.build((2, 4))
    layer = scratch_twin(klayer, (2, 4), "float64")
    ids = np.array([[1, 2, 2, 5], [5, 5, 1, 2]])
    layer.forward(ids, training=True)
    dout = np.ones((2, 4, 3))
    assert layer.backward(dout) is None
    grad = layer.grads["embeddings"]
    np.testing.assert_array_equal(grad[:, 0], [0, 2, 3, 0, 0, 3, 0, 0, 0, 0])  # counts of each id
    np.testing.assert_array_equal(layer.grad_squares["embeddings"][:, 0], grad[:, 0])  # 1² summed per use
