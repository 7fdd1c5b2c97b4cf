"""Input, Dense, Activation (and the ReLU/LeakyReLU/Softmax layers), Flatten."""
from __future__ import annotations

import numpy as np

from .. import activations
from .base import Cache, Layer, check_positive_int


class InputLayer(Layer):
    """Marks a model input: its shape (batch first, unknown) and dtype. ``forward`` is the identity."""

    options = {"batch_shape": None, "dtype": None}

    def __init__(self, shape=None, dtype: str = "float32", name: str | None = None):
        super().__init__(name)
        self.shape = None if shape is None else tuple(shape)
        self.dtype = dtype

    def get_config(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    def forward(self, x, mask=None, training=False):
        return x

    def backward(self, dout):
        return dout


class Dense(Layer):
    """``out = act(x @ kernel + bias)`` on the last axis. x: (N, ..., D) -> (N, ..., units).

    Weights: ``kernel`` (D, units), ``bias`` (units,).
    """

    supports_masking = True
    options = {"units": None, "activation": None, "use_bias": None}

    def __init__(self, units: int, activation=None, use_bias: bool = True, name: str | None = None):
        super().__init__(name)
        self.units = check_positive_int(units, "units")
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict:
        return {"name": self.name, "units": self.units, "activation": self.activation, "use_bias": self.use_bias}

    def weight_shapes(self, input_shape):
        shapes = {"kernel": (input_shape[-1], self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, mask=None, training=False):
        z = x @ self.weights["kernel"]
        if self.use_bias:
            z += self.weights["bias"]
        y = self.act(z)
        if training:
            self.cache = Cache(x=x, z=z, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, ..., units) w.r.t. the output (or w.r.t. ``z`` when ``pre_activation``) -> dx (N, ..., D)."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        d2 = dz.reshape(-1, self.units)
        self.grads = {"kernel": c.x.reshape(-1, c.x.shape[-1]).T @ d2}
        if self.use_bias:
            self.grads["bias"] = d2.sum(axis=0)
        return dz @ self.weights["kernel"].T


class Activation(Layer):
    """Applies a Keras activation by name."""

    supports_masking = True
    options = {"activation": None}

    def __init__(self, activation, name: str | None = None):
        super().__init__(name)
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)

    def get_config(self) -> dict:
        return {"name": self.name, "activation": self.activation}

    def forward(self, x, mask=None, training=False):
        y = self.act(x)
        if training:
            self.cache = Cache(x=x, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        return dout if pre_activation else activations.backward(self.activation, dout, self.cache.x, self.cache.y)


class ReLU(Layer):
    """Keras' ``ReLU`` layer: ``max_value`` above it, ``x`` from ``threshold`` up, else
    ``negative_slope * (x - threshold)`` (``ReLU(6.0)`` is MobileNet's ReLU6)."""

    supports_masking = True
    options = {"max_value": None, "negative_slope": None, "threshold": None}

    def __init__(self, max_value=None, negative_slope: float = 0.0, threshold: float = 0.0, name: str | None = None):
        super().__init__(name)
        if max_value is not None and (isinstance(max_value, bool) or float(max_value) < 0):
            raise ValueError(f"Expected a non-negative float or None for `max_value`, received: {max_value!r}")
        if float(negative_slope) < 0:
            raise ValueError(f"Expected a non-negative float for `negative_slope`, received: {negative_slope!r}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def get_config(self) -> dict:
        return {"name": self.name, "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}

    def forward(self, x, mask=None, training=False):
        """Keras' order of operations: ``x`` above the threshold (else 0), clipped to [0, max_value],
        minus ``negative_slope * relu(threshold - x)``."""
        if training:
            self.cache = Cache(x=x)
        t = x.dtype.type(self.threshold)
        y = np.where(x > t, x, x.dtype.type(0)) if self.threshold else activations.relu(x)
        if self.max_value is not None:
            y = np.clip(y, 0, x.dtype.type(self.max_value))
        if self.negative_slope:
            y = y - x.dtype.type(self.negative_slope) * activations.relu(t - x)
        return y.astype(x.dtype, copy=False)

    def backward(self, dout):
        x, t = self.cache.x, self.threshold
        above = x > t
        if self.max_value is not None:
            above &= (x > 0) & (x < self.max_value)
        slope = above.astype(dout.dtype)
        if self.negative_slope:
            slope += dout.dtype.type(self.negative_slope) * (x < t)
        return dout * slope


class LeakyReLU(Layer):
    supports_masking = True
    options = {"negative_slope": None, "alpha": None}

    def __init__(self, negative_slope: float = 0.3, alpha: float | None = None, name: str | None = None):
        super().__init__(name)
        self.negative_slope = float(alpha if alpha is not None else negative_slope)

    def get_config(self) -> dict:
        return {"name": self.name, "negative_slope": self.negative_slope}

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x=x)
        return activations.leaky_relu(x, self.negative_slope)

    def backward(self, dout):
        return np.where(self.cache.x > 0, dout, dout * dout.dtype.type(self.negative_slope))


class Softmax(Activation):
    """Keras' ``Softmax`` layer (last axis only): an ``Activation("softmax")``, forward and backward alike."""

    options = {"axis": (-1, [-1])}

    def __init__(self, axis=-1, name: str | None = None):
        if axis not in (-1, [-1]):
            raise ValueError(f"Softmax supports the last axis only, received: axis={axis!r}")
        super().__init__("softmax", name)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": -1}


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), in row-major (channels-last) order as Keras."""

    harmless = {"data_format": ("channels_last", None)}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(shape=x.shape)
        return x.reshape(len(x), -1)

    def backward(self, dout):
        return dout.reshape(self.cache.shape)
