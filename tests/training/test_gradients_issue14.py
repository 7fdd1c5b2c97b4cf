"""Backward of the issue-14 layers against ``tf.GradientTape`` on the same weights and input, in float64
(relative error <= 1e-7) and float32 (<= 1e-4): output, d input and d every weight for one random upstream
gradient, layers in training mode. GRU (reset_after both ways, masks, go_backwards, sequences), Conv1D
(padding valid/same/causal, strides, dilation, groups), LayerNormalization (axes, center/scale, rms_scaling),
the dilated/grouped Conv2D, Add and Concatenate (several inputs, any axis); then one scratch training step of
a GRU and a Conv1D text classifier against Keras' (same weights after one SGD step)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from training_helpers import check_gradient_errors, compare_layer, floatx, randomize, rel_error

L = keras.layers
DTYPES = ["float64", "float32"]
RNG = np.random.default_rng(14)


def sequence(n=3, t=6, d=4):
    return RNG.normal(size=(n, t, d))


def step_mask(n=3, t=6):
    m = np.ones((n, t), bool)
    m[0, 4:] = False
    m[1, :2] = False
    m[2, 2:4] = False
    return m


CASES = {}
for reset_after in (True, False):
    for seq in (False, True):
        for back in (False, True):
            for masked in (False, True):
                CASES[f"gru_ra{int(reset_after)}_seq{int(seq)}_back{int(back)}_mask{int(masked)}"] = (
                    (lambda ra=reset_after, seq=seq, back=back: L.GRU(3, reset_after=ra, return_sequences=seq,
                                                                      go_backwards=back)), sequence, masked)
CASES["gru_relu_hard_sigmoid_nobias"] = (lambda: L.GRU(3, activation="relu", recurrent_activation="hard_sigmoid",
                                                       use_bias=False, return_sequences=True), sequence, True)
CASES["gru_reset_before_nobias"] = (lambda: L.GRU(3, reset_after=False, use_bias=False), sequence, False)
CASES["bi_gru_concat_seq"] = (lambda: L.Bidirectional(L.GRU(3, return_sequences=True)), sequence, True)
for padding in ("valid", "same", "causal"):
    for strides, dilation in ((1, 1), (2, 1), (1, 2)):
        CASES[f"conv1d_{padding}_s{strides}_d{dilation}"] = (
            (lambda p=padding, s=strides, d=dilation: L.Conv1D(4, 3, padding=p, strides=s, dilation_rate=d,
                                                               activation="tanh")), lambda: sequence(2, 9, 4), False)
CASES["conv1d_groups2_nobias_relu"] = (lambda: L.Conv1D(4, 2, groups=2, use_bias=False, activation="relu"),
                                       lambda: sequence(2, 7, 4), False)
CASES["conv2d_dilated_same"] = (lambda: L.Conv2D(3, 3, dilation_rate=2, padding="same"),
                                lambda: RNG.normal(size=(2, 7, 8, 3)), False)
CASES["conv2d_groups3_stride2"] = (lambda: L.Conv2D(6, 3, groups=3, strides=2, activation="elu"),
                                   lambda: RNG.normal(size=(2, 8, 7, 6)), False)
for name, kwargs in {"default": {}, "axis12": dict(axis=(1, 2)), "no_center": dict(center=False),
                     "no_scale": dict(scale=False), "rms": dict(rms_scaling=True), "eps": dict(epsilon=0.5)}.items():
    CASES[f"layernorm_{name}"] = ((lambda kw=kwargs: L.LayerNormalization(**kw)), lambda: sequence() * 2 + 1, False)
CASES["depthwise_same_m2"] = (lambda: L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="tanh"),
                              lambda: RNG.normal(size=(2, 7, 6, 3)), False)
CASES["depthwise_rect_kernel_stride2_nobias"] = (lambda: L.DepthwiseConv2D((3, 2), strides=2,
                                                                       use_bias=False), lambda: RNG.normal(size=(2, 8, 7, 2)), False)
CASES["depthwise_dilated2"] = (lambda: L.DepthwiseConv2D(3, dilation_rate=2, padding="same"),
                               lambda: RNG.normal(size=(2, 8, 8, 2)), False)
CASES["separable_same_m2_relu"] = (lambda: L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2,
                                                             activation="relu"), lambda: RNG.normal(size=(2, 7, 7, 3)), False)
CASES["separable_valid_stride2_nobias"] = (lambda: L.SeparableConv2D(3, 3, strides=2, use_bias=False),
                                           lambda: RNG.normal(size=(2, 9, 8, 2)), False)
CASES["layernorm_2d"] = (lambda: L.LayerNormalization(), lambda: RNG.normal(size=(4, 6)), False)
CASES["unit_normalization"] = (lambda: L.UnitNormalization(), sequence, False)
CASES["relu6"] = (lambda: L.ReLU(max_value=6.0), lambda: sequence() * 5, False)
CASES["dense_gelu"] = (lambda: L.Dense(4, activation="gelu"), sequence, False)
CASES["dense_hard_swish"] = (lambda: L.Dense(4, activation="hard_swish"), lambda: sequence() * 3, False)


def check(errors, dtype, record_error):
    check_gradient_errors(errors, dtype, record_error, "issue14 gradients")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_matches_gradient_tape(case, dtype, record_error):
    make, data, masked = CASES[case]
    x = data()
    tol_dtype = dtype
    if "gelu" in case and dtype == "float64":
        tol_dtype = "float32"  # our erf is a float32-accurate fit (1.2e-7), not float64's
    errors = compare_layer(make, x, dtype, mask=step_mask(len(x), x.shape[1]) if masked else None)
    check(errors, tol_dtype, record_error)


MERGES = {"add": (lambda: L.Add(), -1), "concat_last": (lambda: L.Concatenate(), -1),
          "concat_axis1": (lambda: L.Concatenate(axis=1), 1), "concat_axis2": (lambda: L.Concatenate(axis=2), 2)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(MERGES))
def test_merge_gradients_match_gradient_tape(case, dtype, record_error):
    """Three inputs: d output / d each input (and the output) against GradientTape."""
    import tensorflow as tf

    from scratch_models.layers import layer_from_keras_config
    make, _ = MERGES[case]
    xs = [RNG.normal(size=(2, 3, 4)).astype(dtype) for _ in range(3)]
    with floatx(dtype):
        klayer = make()
        klayer.build([x.shape for x in xs])
    layer = layer_from_keras_config(type(klayer).__name__, klayer.get_config())
    layer.build([(None, *x.shape[1:]) for x in xs])
    dout_shape = tuple(np.asarray(klayer(xs)).shape)
    dout = RNG.normal(size=dout_shape).astype(dtype)
    ts = [tf.constant(x) for x in xs]
    with tf.GradientTape() as tape:
        for t in ts:
            tape.watch(t)
        y = klayer(ts, training=True)
        loss = tf.reduce_sum(y * dout)
    grads = tape.gradient(loss, ts)
    ours = layer.forward(xs, training=True)
    dxs = layer.backward(dout)
    errors = {"output": rel_error(ours, y.numpy()), **{f"dx{i}": rel_error(a, b.numpy()) for i, (a, b) in
                                                      enumerate(zip(dxs, grads))}}
    check(errors, dtype, record_error)


# ----------------------------------------------------------------- one training step vs Keras
def _text_model(kind: str):
    layers = {"gru": [L.GRU(5, return_sequences=True), L.GRU(4, reset_after=False)],
              "conv1d": [L.Conv1D(6, 3, padding="causal", activation="relu"), L.MaxPooling1D(2),
                         L.Conv1D(5, 2, dilation_rate=2), L.GlobalAveragePooling1D()]}[kind]
    return keras.Sequential([keras.Input((10,), dtype="int32"), L.Embedding(30, 6, mask_zero=kind == "gru"),
                             *layers, L.LayerNormalization(), L.Dense(3, activation="softmax")])


@pytest.mark.parametrize("kind", ["gru", "conv1d"])
def test_one_sgd_step_matches_keras(kind):
    """Scratch training covers GRU / Conv1D text models: after one SGD step on the same batch, every weight
    equals Keras' (float64, relative error <= 1e-7)."""
    import scratch_models
    from scratch_models.optimizers import SGD
    rng = np.random.default_rng(15)
    ids = rng.integers(1, 30, size=(8, 10)).astype(np.int32)
    ids[0, 7:] = 0
    ids[3, 4:] = 0
    y = rng.integers(0, 3, size=8)
    with floatx("float64"):
        kmodel = _text_model(kind)
        randomize(kmodel, rng, scale=0.3)
        ours = scratch_models.from_keras(kmodel)
        kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        kmodel.train_on_batch(ids, y)
    ours.compile(optimizer=SGD(0.1), loss="sparse_categorical_crossentropy")
    ours.train_step(ids, y)
    for a, b, w in zip(ours.get_weights(), kmodel.get_weights(), kmodel.weights):
        assert rel_error(a, b) <= 1e-7, (w.path, rel_error(a, b))


@pytest.mark.parametrize("case", ["return_state", "initial_state", "op_on_values"])
def test_training_refuses_what_backward_does_not_follow(case):
    """Model.backward follows one output per node and ops pass no gradient: compile refuses such graphs by name
    instead of training them with silently missing gradients."""
    import scratch_models
    from keras import ops
    inp = keras.Input((6,), dtype="int32")
    x = L.Embedding(20, 4, name="emb")(inp)
    if case == "return_state":
        y, h = L.GRU(3, return_state=True, name="gru_state")(x)
        y, name = L.Concatenate()([y, h]), "gru_state"
    elif case == "initial_state":
        h0 = L.Dense(3, name="h0")(L.GlobalAveragePooling1D()(x))
        y, name = L.GRU(3, name="gru_init")(x, initial_state=[h0]), "gru_init"
    else:
        y, name = L.GRU(3)(ops.multiply(x, 2.0)), "multiply"
    model = scratch_models.from_keras(keras.Model(inp, L.Dense(2, activation="softmax")(y)))
    with pytest.raises(NotImplementedError, match=name):
        model.compile("sgd")


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_backward_and_frozen_statistics(invert):
    """Normalization passes d x through (1 / std, or std inverted) and its statistics are not trained."""
    import tensorflow as tf

    import scratch_models
    from scratch_models.optimizers import SGD
    rng = np.random.default_rng(16)
    data = rng.normal(2.0, 3.0, (50, 5))
    norm = L.Normalization(invert=invert)
    norm.adapt(data.astype(np.float32))
    kmodel = keras.Sequential([keras.Input((5,)), norm, L.Dense(3, activation="softmax")])
    ours = scratch_models.from_keras(kmodel).astype(np.float64)
    x = rng.normal(size=(4, 5))
    layer = ours.layers[norm.name]
    layer.forward(x, training=True)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(norm(xt) * np.arange(5, dtype=np.float32))
    assert rel_error(layer.backward(np.tile(np.arange(5.0), (4, 1))), tape.gradient(loss, xt).numpy()) <= 1e-5
    before = [w.copy() for w in layer.get_weights()]
    ours.compile(SGD(0.5))
    ours.train_step(x, np.array([0, 1, 2, 0]))
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
