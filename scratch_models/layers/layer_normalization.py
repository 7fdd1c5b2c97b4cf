"""LayerNormalization and UnitNormalization: per-example normalisation over feature axes."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer


def _axes(axis, ndim: int) -> tuple[int, ...]:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    out = sorted({int(a) % ndim for a in axes})
    if 0 in out:
        raise ValueError(f"Expected feature axes (not the batch axis 0), received axis={axis!r}")
    return tuple(out)


class LayerNormalization(Layer):
    """``out = (x - mean) / sqrt(var + epsilon) * gamma + beta``, the statistics over ``axis`` of each
    example (biased variance), computed as Keras: ``x * inv + (beta - mean * inv)``, ``inv = gamma /
    sqrt(var + epsilon)``. With ``rms_scaling``: ``x / sqrt(var + epsilon) * gamma`` (Keras' form).

    Weights: ``gamma`` (shape of the normalised axes) if scale, ``beta`` likewise if center.
    """

    supports_masking = True
    options = {"axis": None, "epsilon": None, "center": None, "scale": None, "rms_scaling": None}

    def __init__(self, axis=-1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, name: str | None = None):
        super().__init__(name)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        if float(epsilon) <= 0:
            raise ValueError(f"Expected a positive float for `epsilon`, received: {epsilon!r}")
        self.epsilon = float(epsilon)
        self.rms_scaling = bool(rms_scaling)
        self.center = bool(center) and not self.rms_scaling  # Keras: rms_scaling implies no beta
        self.scale = bool(scale)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling}

    def weight_shapes(self, input_shape):
        axes = _axes(self.axis, len(input_shape))
        shape = tuple(input_shape[a] for a in axes)
        shapes = {}
        if self.scale:
            shapes["gamma"] = shape
        if self.center:
            shapes["beta"] = shape
        return shapes

    def _param(self, key, ndim, axes):
        w = self.weights[key]
        return w if axes == (ndim - 1,) else w.reshape([w.shape[axes.index(d)] if d in axes else 1 for d in range(ndim)])

    def forward(self, x, mask=None, training=False):
        x = np.asarray(x, self.dtype)
        axes = _axes(self.axis, x.ndim)
        mean = x.mean(axis=axes, keepdims=True)
        var = np.square(x - mean).mean(axis=axes, keepdims=True)
        rstd = 1 / np.sqrt(var + self.dtype.type(self.epsilon))
        inv = rstd * self._param("gamma", x.ndim, axes) if self.scale else rstd
        if self.rms_scaling:
            y = x * inv
        else:
            shift = -mean * inv
            if self.center:
                shift = shift + self._param("beta", x.ndim, axes)
            y = x * inv + shift
        if training:
            self.cache = Cache(x=x, mean=mean, rstd=rstd, axes=axes)
        return y.astype(self.dtype, copy=False)

    def backward(self, dout):
        """dx of a normalisation over ``axes``: rstd * (g - mean(g) - x̂ mean(g x̂)), g = dout * gamma; with
        rms_scaling the output is x * rstd * gamma, through the same variance."""
        c = self.cache
        reduce = tuple(a for a in range(dout.ndim) if a not in c.axes)
        x_hat = (c.x - c.mean) * c.rstd
        g = dout * self._param("gamma", dout.ndim, c.axes) if self.scale else dout
        self.grads = {}
        if self.scale:
            normed = c.x * c.rstd if self.rms_scaling else x_hat
            self.grads["gamma"] = (dout * normed).sum(axis=reduce).reshape(self.weights["gamma"].shape)
        if self.center:
            self.grads["beta"] = dout.sum(axis=reduce).reshape(self.weights["beta"].shape)
        m = lambda v: v.mean(axis=c.axes, keepdims=True)  # noqa: E731
        if self.rms_scaling:  # y = x * rstd * gamma, rstd = (var + eps)^-1/2: the x in x * rstd, then var
            return c.rstd * g - c.rstd ** 3 * (c.x - c.mean) * m(g * c.x)
        return c.rstd * (g - m(g) - x_hat * m(g * x_hat))


class UnitNormalization(Layer):
    """``x / ||x||₂`` over ``axis``, computed as Keras: ``x * min(1 / sqrt(Σx²), 1e12)``."""

    supports_masking = True
    options = {"axis": None}

    def __init__(self, axis=-1, name: str | None = None):
        super().__init__(name)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}

    def forward(self, x, mask=None, training=False):
        axes = _axes(self.axis, x.ndim)
        with np.errstate(divide="ignore"):
            inv = np.minimum(1 / np.sqrt(np.square(x).sum(axis=axes, keepdims=True)), x.dtype.type(1e12))
        if training:
            self.cache = Cache(x=x, inv=inv, axes=axes)
        return x * inv

    def backward(self, dout):
        c = self.cache
        clipped = c.inv >= 1e12
        proj = (dout * c.x).sum(axis=c.axes, keepdims=True)
        return np.where(clipped, dout * c.inv, c.inv * dout - c.x * c.inv ** 3 * proj)
