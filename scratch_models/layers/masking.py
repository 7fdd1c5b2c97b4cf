"""Masking: time steps whose features all equal ``mask_value`` are masked (and zeroed)."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer


class Masking(Layer):
    """x: (N, T, D) -> the same with masked steps set to 0; the mask (N, T) is ``any(x != mask_value)``
    over the last axis, which recurrent layers and mask-aware pooling downstream honour."""

    supports_masking = True
    options = {"mask_value": None}

    def __init__(self, mask_value: float = 0.0, name: str | None = None):
        super().__init__(name)
        self.mask_value = float(mask_value)

    def get_config(self) -> dict:
        return {"name": self.name, "mask_value": self.mask_value}

    def forward(self, x, mask=None, training=False):
        keep = self.compute_mask(x, mask)[..., None]
        if training:
            self.cache = Cache(keep=keep)
        return np.where(keep, x, x.dtype.type(0))

    def backward(self, dout):
        return dout * self.cache.keep

    def compute_mask(self, x, mask):
        return np.any(np.asarray(x) != self.mask_value, axis=-1)
