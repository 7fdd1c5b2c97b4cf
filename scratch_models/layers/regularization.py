"""Layers that only act in training: identities at inference (the mask passes through)."""
from __future__ import annotations

from .base import Layer


class Dropout(Layer):
    """Inverted dropout: identity at inference."""

    supports_masking = True
    options = {"rate": None}

    def __init__(self, rate: float = 0.0, name: str | None = None):
        super().__init__(name)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"Expected `rate` in [0, 1), received: {rate!r}")
        self.rate = float(rate)

    def get_config(self) -> dict:
        return {"name": self.name, "rate": self.rate}

    def forward(self, x, mask=None, training=False):
        if training:
            raise NotImplementedError(f"{type(self).__name__} in training mode comes with the backward pass")
        return x


class SpatialDropout1D(Dropout):
    """Drops whole channels of a (N, T, C) sequence in training; identity at inference."""


class SpatialDropout2D(Dropout):
    """Drops whole channels of a (N, H, W, C) image in training; identity at inference."""


class GaussianDropout(Dropout):
    """Multiplies by N(1, rate/(1-rate)) noise in training; identity at inference."""


class AlphaDropout(Dropout):
    """SELU-preserving dropout in training; identity at inference."""


class GaussianNoise(Layer):
    """Adds N(0, stddev) noise in training; identity at inference."""

    supports_masking = True
    options = {"stddev": None}

    def __init__(self, stddev: float = 0.0, name: str | None = None):
        super().__init__(name)
        self.stddev = float(stddev)

    def get_config(self) -> dict:
        return {"name": self.name, "stddev": self.stddev}

    def forward(self, x, mask=None, training=False):
        if training:
            raise NotImplementedError("GaussianNoise in training mode comes with the backward pass")
        return x
