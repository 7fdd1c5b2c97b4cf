"""BatchNormalization: batch statistics in training (moving ones updated), the moving statistics at inference."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer


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
        axes = tuple(range(x.ndim - 1))
        if training:  # batch statistics; the moving ones move towards them (biased variance, as Keras)
            mean = x.mean(axis=axes)
            var = np.square(x - mean).mean(axis=axes)
            m = self.dtype.type(self.momentum)
            self.weights["moving_mean"] = self.weights["moving_mean"] * m + mean * (1 - m)
            self.weights["moving_variance"] = self.weights["moving_variance"] * m + var * (1 - m)
        else:
            mean, var = self.weights["moving_mean"], self.weights["moving_variance"]
        # Same order of operations as Keras: (x - mean) * (gamma / sqrt(var + eps)) + beta.
        inv = 1.0 / np.sqrt(var + self.dtype.type(self.epsilon))
        x_hat_scale = inv * self.weights["gamma"] if self.scale else inv
        out = (x - mean) * x_hat_scale
        if self.center:
            out += self.weights["beta"]
        if training:
            self.cache = Cache(x_hat=(x - mean) * inv, inv=inv, axes=axes)
        return out.astype(self.dtype, copy=False)

    def backward(self, dout):
        """Through the batch statistics: dx = inv/n * (n*dx̂ - Σdx̂ - x̂ Σ(dx̂ x̂))."""
        c = self.cache
        self.grads = {}
        dx_hat = dout * self.weights["gamma"] if self.scale else dout
        if self.scale:
            self.grads["gamma"] = (dout * c.x_hat).sum(axis=c.axes)
        if self.center:
            self.grads["beta"] = dout.sum(axis=c.axes)
        self.grads["moving_mean"] = np.zeros_like(self.weights["moving_mean"])
        self.grads["moving_variance"] = np.zeros_like(self.weights["moving_variance"])
        n = self.dtype.type(np.prod([dout.shape[a] for a in c.axes]))
        return (c.inv / n) * (n * dx_hat - dx_hat.sum(axis=c.axes) - c.x_hat * (dx_hat * c.x_hat).sum(axis=c.axes))
