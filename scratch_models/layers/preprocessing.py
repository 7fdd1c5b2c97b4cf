"""Preprocessing layers saved inside models: Rescaling, Normalization (adapted or given statistics)."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer

#: Keras' backend.epsilon(): the floor of Normalization's standard deviation.
KERAS_EPSILON = 1e-7


class Rescaling(Layer):
    """``out = x * scale + offset`` (scalars, or arrays broadcast against the input)."""

    supports_masking = True
    options = {"scale": None, "offset": None}

    def __init__(self, scale, offset=0.0, name: str | None = None):
        super().__init__(name)
        self.scale, self.offset = scale, offset

    def get_config(self) -> dict:
        return {"name": self.name, "scale": self.scale, "offset": self.offset}

    def forward(self, x, mask=None, training=False):
        x = np.asarray(x, self.dtype)
        return x * np.asarray(self.scale, self.dtype) + np.asarray(self.offset, self.dtype)

    def backward(self, dout):
        return dout * np.asarray(self.scale, dout.dtype)


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per position of the kept ``axis`` (``invert``: the
    inverse, ``mean + x * max(sqrt(variance), 1e-7)``).

    Adapted (no ``mean``/``variance`` in the config): weights ``mean``, ``variance`` (kept axes' sizes)
    and ``count`` (), as Keras. Given statistics live in the config and there are no weights.
    """

    options = {"axis": None, "mean": None, "variance": None, "invert": None}
    non_trainable = ("mean", "variance", "count")  # Keras' non-trainable weights: training leaves them

    def __init__(self, axis=-1, mean=None, variance=None, invert: bool = False, name: str | None = None):
        super().__init__(name)
        self.axis = [] if axis is None else (list(axis) if isinstance(axis, (list, tuple)) else [int(axis)])
        if (mean is None) != (variance is None):
            raise ValueError("Expected both `mean` and `variance` or neither, received only one of them")
        self.mean, self.variance = mean, variance
        self.invert = bool(invert)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis, "mean": self.mean, "variance": self.variance,
                "invert": self.invert}

    def _keep(self, ndim: int) -> tuple[int, ...]:
        return tuple(sorted(a % ndim for a in self.axis))

    def weight_shapes(self, input_shape):
        if self.mean is not None:
            return {}
        shape = tuple(input_shape[a] for a in self._keep(len(input_shape)))
        return {"mean": shape, "variance": shape, "count": ()}

    def _statistics(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """mean and variance, shaped to broadcast against an input of rank ``ndim``."""
        keep = self._keep(ndim)
        mean = self.weights["mean"] if self.mean is None else np.asarray(self.mean, self.dtype)
        var = self.weights["variance"] if self.mean is None else np.asarray(self.variance, self.dtype)
        shape = [1] * ndim
        if not keep:  # one scalar pair (set_weights stores 0-d arrays as (1,))
            return mean.reshape(()), var.reshape(())
        if mean.ndim:  # align the statistics' axes with the kept axes, from the right (Keras)
            for i in range(1, mean.ndim + 1):
                shape[keep[-i]] = mean.shape[-i]
        return mean.reshape(shape), var.reshape(shape)

    def forward(self, x, mask=None, training=False):
        x = np.asarray(x, self.dtype)
        mean, var = self._statistics(x.ndim)
        std = np.maximum(np.sqrt(var), self.dtype.type(KERAS_EPSILON))
        if training:
            self.cache = Cache(std=std)
        return mean + x * std if self.invert else (x - mean) / std

    def backward(self, dout):
        """The statistics are not trained (Keras' are non-trainable weights): d x only."""
        self.grads = {k: np.zeros_like(w) for k, w in self.weights.items()}
        return dout * self.cache.std if self.invert else dout / self.cache.std
