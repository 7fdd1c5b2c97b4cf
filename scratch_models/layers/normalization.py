"""BatchNormalization at inference: normalise with the moving statistics."""
from __future__ import annotations

import numpy as np

from .base import Layer


class BatchNormalization(Layer):
    """``out = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta`` on the last axis.

    Weights (Keras order): ``gamma`` (C,) if scale, ``beta`` (C,) if center, ``moving_mean`` (C,),
    ``moving_variance`` (C,).
    """

    supports_masking = True
    options = {"axis": (-1, [-1], 3, [3]), "momentum": None, "epsilon": None, "center": None, "scale": None,
               "renorm": (False,)}

    def __init__(self, axis=-1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, name: str | None = None, renorm: bool = False):
        super().__init__(name)
        self.axis = axis[0] if isinstance(axis, (list, tuple)) else axis
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": -1, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}

    def weight_shapes(self, input_shape):
        if self.axis not in (-1, len(input_shape) - 1):
            raise ValueError(f"BatchNormalization {self.name!r}: only the last axis is supported, received axis={self.axis}")
        c = (input_shape[-1],)
        shapes = {}
        if self.scale:
            shapes["gamma"] = c
        if self.center:
            shapes["beta"] = c
        shapes["moving_mean"] = c
        shapes["moving_variance"] = c
        return shapes

    def forward(self, x, mask=None, training=False):
        if training:
            raise NotImplementedError("BatchNormalization in training mode comes with the backward pass")
        # Same order of operations as Keras: (x - mean) * (gamma / sqrt(var + eps)) + beta.
        inv = 1.0 / np.sqrt(self.weights["moving_variance"] + np.float32(self.epsilon))
        if self.scale:
            inv = inv * self.weights["gamma"]
        out = (x - self.weights["moving_mean"]) * inv
        if self.center:
            out = out + self.weights["beta"]
        return out.astype(np.float32, copy=False)
