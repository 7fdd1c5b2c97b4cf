"""Layers that only act in training: identities at inference (the mask passes through).

In training they draw their noise from ``self.rng`` (a NumPy Generator, reseeded by ``Model.fit``);
Keras' TensorFlow random streams cannot be reproduced, only their distribution.
"""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with probability ``1 - rate`` and scale by
    ``1 / (1 - rate)``; identity at inference."""

    supports_masking = True
    options = {"rate": None}

    def __init__(self, rate: float = 0.0, name: str | None = None):
        super().__init__(name)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"Expected `rate` in [0, 1), received: {rate!r}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(0)

    def get_config(self) -> dict:
        return {"name": self.name, "rate": self.rate}

    def noise_shape(self, x: np.ndarray) -> tuple:
        return x.shape

    def forward(self, x, mask=None, training=False):
        if not training or self.rate == 0:
            self.cache = Cache(scale=None)
            return x
        keep = self.rng.random(self.noise_shape(x)) >= self.rate
        scale = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        self.cache = Cache(scale=scale)
        return x * scale

    def backward(self, dout):
        return dout if self.cache.scale is None else dout * self.cache.scale


class SpatialDropout1D(Dropout):
    """Drops whole channels of a (N, T, C) sequence in training (noise shape (N, 1, C))."""

    def noise_shape(self, x):
        return (x.shape[0], 1, x.shape[2])


class SpatialDropout2D(Dropout):
    """Drops whole channels of a (N, H, W, C) image in training (noise shape (N, 1, 1, C))."""

    harmless = {"data_format": ("channels_last", None)}

    def noise_shape(self, x):
        return (x.shape[0], 1, 1, x.shape[3])


class GaussianDropout(Dropout):
    """Multiplies by N(1, rate/(1-rate)) noise in training; identity at inference."""

    def forward(self, x, mask=None, training=False):
        if not training or self.rate == 0:
            self.cache = Cache(scale=None)
            return x
        std = np.sqrt(self.rate / (1 - self.rate))
        scale = (1 + std * self.rng.standard_normal(x.shape)).astype(x.dtype)
        self.cache = Cache(scale=scale)
        return x * scale


class AlphaDropout(Dropout):
    """SELU-preserving dropout in training (dropped units set to -alpha*scale, then an affine fix)."""

    ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946

    def forward(self, x, mask=None, training=False):
        if not training or self.rate == 0:
            self.cache = Cache(scale=None)
            return x
        keep = self.rng.random(x.shape) >= self.rate
        a = ((1 - self.rate) * (1 + self.rate * self.ALPHA_P ** 2)) ** -0.5
        b = -a * self.ALPHA_P * self.rate
        self.cache = Cache(scale=(a * keep).astype(x.dtype))
        return (a * np.where(keep, x, self.ALPHA_P) + b).astype(x.dtype)


class GaussianNoise(Layer):
    """Adds N(0, stddev) noise in training; identity at inference."""

    supports_masking = True
    options = {"stddev": None}

    def __init__(self, stddev: float = 0.0, name: str | None = None):
        super().__init__(name)
        self.stddev = float(stddev)
        self.rng = np.random.default_rng(0)

    def get_config(self) -> dict:
        return {"name": self.name, "stddev": self.stddev}

    def forward(self, x, mask=None, training=False):
        if not training:
            return x
        return (x + self.stddev * self.rng.standard_normal(x.shape)).astype(x.dtype)

    def backward(self, dout):
        return dout
