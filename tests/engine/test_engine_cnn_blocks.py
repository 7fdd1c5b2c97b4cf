"""CNN building blocks and element-wise layers of issue 14 against Keras on random weights and inputs
(max |Δ| <= 1e-5): Conv2D with dilation and groups, DepthwiseConv2D, SeparableConv2D, ZeroPadding2D,
Cropping2D, UpSampling2D, Rescaling, Normalization, Reshape, Permute, RepeatVector, ReLU options,
the new activations, LayerNormalization, UnitNormalization; unsupported options refused by name."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from engine_helpers import compare, randomize_weights, single_layer_model

import scratch_models
from scratch_models import UnsupportedLayerError

L = keras.layers


def rand(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def check(layer, input_shape, x, seed=0, tol=1e-5, scale=0.5):
    model = single_layer_model(layer, input_shape)
    randomize_weights(model, seed, scale=scale)
    return compare(model, x, tol)


# ------------------------------------------------------------------ Conv2D dilation and groups
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("dilation", [2, (1, 3), (3, 2)], ids=str)
@pytest.mark.parametrize("kernel", [2, 3, (3, 1)], ids=str)
def test_conv2d_dilation(kernel, dilation, padding):
    check(L.Conv2D(4, kernel, dilation_rate=dilation, padding=padding), (11, 12, 3), rand((2, 11, 12, 3), 1), seed=1)


@pytest.mark.parametrize("strides", [1, 2], ids=str)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("groups,cin,filters", [(2, 4, 6), (3, 6, 3), (4, 8, 8)])
def test_conv2d_groups(groups, cin, filters, padding, strides):
    check(L.Conv2D(filters, 3, groups=groups, padding=padding, strides=strides, activation="relu"),
          (9, 10, cin), rand((3, 9, 10, cin), 2), seed=2)


def test_conv2d_groups_with_dilation_then_batchnorm():
    """A grouped, dilated Conv2D before a BatchNormalization (the shape the inference plan may fold)."""
    model = keras.Sequential([keras.Input((10, 10, 4)), L.Conv2D(4, 3, groups=2, dilation_rate=2, use_bias=False),
                              L.BatchNormalization(), L.ReLU()])
    randomize_weights(model, 3)
    compare(model, rand((2, 10, 10, 4), 3))


# -------------------------------------------------------------- DepthwiseConv2D, SeparableConv2D
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (1, 2), ((2, 1), 1)], ids=str)
@pytest.mark.parametrize("kernel,multiplier", [(3, 1), (5, 2), ((2, 3), 3)], ids=str)
def test_depthwise_conv2d(kernel, multiplier, strides, dilation, padding):
    layer = L.DepthwiseConv2D(kernel, strides=strides, dilation_rate=dilation, padding=padding,
                              depth_multiplier=multiplier, activation="relu6")
    check(layer, (11, 10, 3), rand((2, 11, 10, 3), 4), seed=4)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides,dilation,multiplier", [(1, 1, 1), (2, 1, 2), (1, 2, 1)], ids=str)
def test_separable_conv2d(strides, dilation, multiplier, padding, use_bias):
    layer = L.SeparableConv2D(5, 3, strides=strides, dilation_rate=dilation, padding=padding,
                              depth_multiplier=multiplier, use_bias=use_bias, activation="tanh")
    check(layer, (9, 10, 4), rand((2, 9, 10, 4), 5), seed=5)


# ---------------------------------------------------------------------- padding, cropping, resize
@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 1), (2, 3))], ids=str)
def test_zero_padding2d(padding):
    check(L.ZeroPadding2D(padding), (5, 6, 2), rand((2, 5, 6, 2), 6), tol=0.0)


@pytest.mark.parametrize("cropping", [1, (2, 0), ((0, 1), (2, 3))], ids=str)
def test_cropping2d(cropping):
    check(L.Cropping2D(cropping), (7, 8, 2), rand((2, 7, 8, 2), 7), tol=0.0)


@pytest.mark.parametrize("size", [2, (1, 3), (3, 2)], ids=str)
def test_upsampling2d_nearest(size):
    check(L.UpSampling2D(size), (3, 4, 2), rand((2, 3, 4, 2), 8), tol=0.0)


@pytest.mark.parametrize("layer,shape", [
    (lambda: L.ZeroPadding1D((1, 3)), (5, 2)), (lambda: L.Cropping1D((2, 1)), (7, 2)),
    (lambda: L.UpSampling1D(3), (4, 2))], ids=["ZeroPadding1D", "Cropping1D", "UpSampling1D"])
def test_1d_padding_cropping_upsampling(layer, shape):
    check(layer(), shape, rand((2, *shape), 9), tol=0.0)


# ------------------------------------------------------------------ Reshape, Permute, RepeatVector
@pytest.mark.parametrize("target,shape", [((12,), (3, 4)), ((2, -1), (3, 4)), ((4, 3, 1), (12,)), ((1, 1, 6), (6,))],
                         ids=str)
def test_reshape(target, shape):
    check(L.Reshape(target), shape, rand((2, *shape), 10), tol=0.0)


@pytest.mark.parametrize("dims,shape", [((2, 1), (3, 4)), ((3, 1, 2), (2, 3, 4)), ((1, 3, 2), (2, 3, 4))], ids=str)
def test_permute(dims, shape):
    check(L.Permute(dims), shape, rand((2, *shape), 11), tol=0.0)


def test_repeat_vector():
    check(L.RepeatVector(3), (5,), rand((2, 5), 12), tol=0.0)


# ---------------------------------------------------------------------- Rescaling, Normalization
@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (2.0, 0.5)], ids=str)
def test_rescaling(scale, offset):
    check(L.Rescaling(scale, offset), (4, 4, 3), rand((2, 4, 4, 3), 13) * 100)


@pytest.mark.parametrize("axis", [-1, (1, 2), None], ids=str)
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_adapted(axis, invert):
    data = rand((40, 4, 3), 14) * 3 + 2
    layer = L.Normalization(axis=axis, invert=invert)
    layer.adapt(data)
    model = single_layer_model(layer, (4, 3))  # adapted statistics, not random ones
    compare(model, rand((5, 4, 3), 15) * 3 + 2)


def test_normalization_given_statistics():
    model = single_layer_model(L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.25, 0.0]), (5, 3))
    compare(model, rand((3, 5, 3), 16))


# -------------------------------------------------------------------------- ReLU and activations
@pytest.mark.parametrize("kwargs", [dict(max_value=6.0), dict(max_value=1.5, negative_slope=0.2),
                                    dict(threshold=0.5), dict(threshold=0.5, max_value=2.0),
                                    dict(negative_slope=0.1, threshold=1.0), dict(negative_slope=0.3)],
                         ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_relu_options(kwargs):
    x = rand((3, 4, 9), 17) * 4
    x[0, 0, :6] = [0.0, 6.0, 1.5, 0.5, -0.5, 1.0]  # the kinks
    check(L.ReLU(**kwargs), (4, 9), x)


@pytest.mark.parametrize("name", ["gelu", "hard_swish", "hard_silu", "relu6", "log_softmax", "mish"])
def test_new_activations(name):
    x = rand((4, 3, 9), 18) * 4
    x[0, 0, :6] = [0.0, -3.0, 3.0, 6.0, -6.0, 1e-8]
    check(L.Activation(name), (3, 9), x)


def test_gelu_large_inputs_and_dense_activation():
    x = np.array([[-30.0, -8.0, -3.0, -0.5, 0.0, 0.5, 3.0, 8.0, 30.0]], np.float32)
    check(L.Activation("gelu"), (9,), x)
    check(L.Dense(6, activation="gelu"), (9,), x / 10)


# ---------------------------------------------------- LayerNormalization, UnitNormalization
@pytest.mark.parametrize("kwargs", [dict(), dict(epsilon=1e-6), dict(center=False), dict(scale=False),
                                    dict(axis=(1, 2)), dict(axis=1), dict(rms_scaling=True)],
                         ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_layer_normalization(kwargs):
    check(L.LayerNormalization(**kwargs), (5, 6), rand((3, 5, 6), 19) * 3 + 1, seed=19)


def test_layer_normalization_2d_input():
    check(L.LayerNormalization(), (7,), rand((4, 7), 20) * 2, seed=20)


@pytest.mark.parametrize("axis", [-1, (1, 2)], ids=str)
def test_unit_normalization(axis):
    x = rand((3, 4, 5), 21)
    x[0, 0] = 0.0  # an all-zero vector: Keras' 1e12 cap on the inverse norm
    check(L.UnitNormalization(axis=axis), (4, 5), x)


# ------------------------------------------------------------------------------- unsupported
UNSUPPORTED = {
    "UpSampling2D-bilinear": (lambda: L.UpSampling2D(2, interpolation="bilinear", name="up_bi"), (3, 3, 1),
                              "up_bi", "UpSampling2D", "interpolation"),
    "DepthwiseConv2D-channels_first": (lambda: L.DepthwiseConv2D(3, data_format="channels_first", name="dw_cf"),
                                       (2, 8, 8), "dw_cf", "DepthwiseConv2D", "data_format"),
    "Conv2D-channels_first": (lambda: L.Conv2D(2, 3, data_format="channels_first", name="conv_cf"), (2, 8, 8),
                              "conv_cf", "Conv2D", "data_format"),
    "Resizing": (lambda: L.Resizing(4, 4, name="resize"), (8, 8, 1), "resize", "Resizing", "Resizing"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_is_refused_with_names(case):
    make, shape, layer_name, class_name, option = UNSUPPORTED[case]
    model = single_layer_model(make(), shape)
    with pytest.raises(UnsupportedLayerError) as info:
        scratch_models.from_keras(model)
    for part in (layer_name, class_name, option):
        assert part in str(info.value), f"{part!r} missing from {info.value}"
