"""Dropout and its relatives in training mode: the noise has the documented distribution (checked
statistically, within 5 standard errors) and the gradient is multiplied by the very same mask."""
from __future__ import annotations

import numpy as np
import pytest

from scratch_models.layers import (AlphaDropout, Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                                   SpatialDropout2D)

RATE = 0.3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_inverted_scaling(dtype):
    layer = Dropout(RATE)
    x = np.ones((400, 500), dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == np.dtype(dtype)
    dropped = (y == 0).mean()
    assert abs(dropped - RATE) < 5 * np.sqrt(RATE * (1 - RATE) / x.size)
    np.testing.assert_allclose(y[y != 0], 1 / (1 - RATE), rtol=1e-6)  # survivors scaled by 1/(1-rate)
    assert abs(y.mean() - 1) < 5 * np.sqrt(RATE / (1 - RATE) / x.size)  # expectation kept
    dout = np.random.default_rng(0).normal(size=x.shape).astype(dtype)
    np.testing.assert_array_equal(layer.backward(dout), dout * y)  # x = 1: y is the mask times the scale
    assert layer.forward(x, training=False) is x  # identity at inference


@pytest.mark.parametrize("cls, shape, shared_axes", [(SpatialDropout1D, (200, 7, 60), (1,)),
                                                     (SpatialDropout2D, (100, 4, 5, 60), (1, 2))])
def test_spatial_dropout_drops_whole_channels(cls, shape, shared_axes):
    layer = cls(RATE)
    x = np.ones(shape, np.float32)
    y = layer.forward(x, training=True)
    assert (y == y.max(axis=shared_axes, keepdims=True)).all()  # one decision per (item, channel)
    per_channel = y.max(axis=shared_axes)
    n = per_channel.size
    assert abs((per_channel == 0).mean() - RATE) < 5 * np.sqrt(RATE * (1 - RATE) / n)
    np.testing.assert_allclose(per_channel[per_channel != 0], 1 / (1 - RATE), rtol=1e-6)
    dout = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dout), dout * y)


def test_gaussian_dropout_mean_one_variance_rate_over_keep():
    layer = GaussianDropout(RATE)
    x = np.ones((400, 500), np.float64)
    y = layer.forward(x, training=True)
    var = RATE / (1 - RATE)
    assert abs(y.mean() - 1) < 5 * np.sqrt(var / x.size)
    assert abs(y.var() - var) < 5 * var * np.sqrt(2 / x.size)
    dout = np.random.default_rng(2).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout * y)


def test_alpha_dropout_keeps_mean_and_variance_of_standard_inputs():
    layer = AlphaDropout(0.2)
    x = np.random.default_rng(3).normal(size=(400, 500))
    y = layer.forward(x, training=True)
    assert abs(y.mean()) < 5 / np.sqrt(x.size) * 1.5 and abs(y.var() - 1) < 0.02
    a = ((1 - 0.2) * (1 + 0.2 * AlphaDropout.ALPHA_P ** 2)) ** -0.5
    b = -a * AlphaDropout.ALPHA_P * 0.2
    scale = layer.backward(np.ones_like(x))  # d y / d x: a where kept, 0 where dropped
    kept = scale != 0
    np.testing.assert_allclose(scale[kept], a)
    assert abs((~kept).mean() - 0.2) < 5 * np.sqrt(0.16 / x.size)
    np.testing.assert_allclose(y, np.where(kept, a * x + b, a * AlphaDropout.ALPHA_P + b))  # the same mask


def test_gaussian_noise_is_additive_with_identity_gradient():
    layer = GaussianNoise(0.5)
    x = np.zeros((400, 500))
    y = layer.forward(x, training=True)
    assert abs(y.mean()) < 5 * 0.5 / np.sqrt(x.size) and abs(y.std() - 0.5) < 0.01
    dout = np.random.default_rng(4).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(dout), dout)
