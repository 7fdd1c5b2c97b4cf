"""Pooling and element-wise steps at inference.

Max/average 2-D pooling combine the ph*pw strided slices of the padded input with one whole-array
``maximum``/``add`` per window offset, into an arena buffer: a reduction over the (N, Ho, Wo, C, ph, pw)
window view, as the layers' textbook forward does, has innermost runs of 1-2 values and is several times slower.
"""
from __future__ import annotations

import numpy as np

from ..layers.convolution import pad_images, window_offsets, windows
from .conv import batchnorm_affine, max_pool_2x2
from .memory import Fresh
from .split import Part


class PoolStep:
    """MaxPooling2D or AveragePooling2D (``kind`` 'max' or 'avg')."""

    def __init__(self, layer, kind: str, key=None):
        self.layer, self.kind, self.key = layer, kind, key if key is not None else id(self)

    def __call__(self, x: np.ndarray, part: Part | None = None) -> np.ndarray:
        layer, arena = self.layer, (part or Part(Fresh())).arena
        _, ho, wo, _ = layer.compute_output_shape(x.shape)
        out = arena.get((self.key, "out"), (len(x), ho, wo, x.shape[3]), x.dtype)
        if self.kind == "max" and layer.pool_size == layer.strides == (2, 2) and layer.padding == "valid":
            return max_pool_2x2(x, out)
        ufunc, pad = (np.maximum, -np.inf) if self.kind == "max" else (np.add, 0.0)
        xp = pad_images(x, layer.pool_size, layer.strides, layer.padding, value=pad)
        regions = [region for _, region in window_offsets(layer.pool_size, layer.strides, (ho, wo))]
        if len(regions) == 1:
            out[...] = xp[regions[0]]
        else:
            ufunc(xp[regions[0]], xp[regions[1]], out=out)
            for region in regions[2:]:
                ufunc(out, xp[region], out=out)
        if self.kind == "avg":
            (ph, pw), (sh, sw) = layer.pool_size, layer.strides
            exact = (ph, pw) == (sh, sw) and x.shape[1] % ph == 0 and x.shape[2] % pw == 0
            out /= x.dtype.type(ph * pw) if exact else self._counts(x).astype(x.dtype)
        return out

    def _counts(self, x) -> np.ndarray:
        """Real (unpadded) cells of each window, (1, Ho, Wo, 1): Keras divides a 'same' window by them."""
        layer = self.layer
        ones = pad_images(np.ones((1, *x.shape[1:3], 1), np.float32), layer.pool_size, layer.strides, layer.padding)
        return windows(ones, layer.pool_size, layer.strides).sum(axis=(-2, -1))


class AffineStep:
    """A BatchNormalization not folded into a convolution: ``x * scale + shift``, both computed once."""

    def __init__(self, layer, key=None):
        self.layer, self.key = layer, key if key is not None else id(self)
        self.scale, self.shift = batchnorm_affine(layer)

    def __call__(self, x: np.ndarray, part: Part | None = None) -> np.ndarray:
        arena = (part or Part(Fresh())).arena
        out = arena.get((self.key, "out"), x.shape, self.layer.dtype)
        np.multiply(x, self.scale, out=out)
        out += self.shift
        return out


class DenseStep:
    """Dense, with its own activation or that of a following Activation layer: ``act(x @ kernel + bias)``,
    the product written into the arena and the bias and ReLU applied in place."""

    def __init__(self, layer, activation: str | None = None, key=None):
        from .. import activations
        self.layer, self.key = layer, key if key is not None else id(self)
        self.activation = layer.activation if activation is None else activation
        self.act = activations.get(self.activation)

    def __call__(self, x: np.ndarray, part: Part | None = None) -> np.ndarray:
        layer, arena = self.layer, (part or Part(Fresh())).arena
        kernel = layer.weights["kernel"]
        x = np.asarray(x, layer.dtype)
        out = arena.get((self.key, "out"), (*x.shape[:-1], layer.units), layer.dtype)
        np.matmul(x, kernel, out=out)
        if layer.use_bias:
            out += layer.weights["bias"]
        if self.activation == "relu":
            np.maximum(out, 0, out=out)
            return out
        return out if self.activation == "linear" else self.act(out)
