"""Conv1D: cross-correlation over (N, T, C) sequences, with 'valid', 'same' and 'causal' padding,
strides, dilation and groups, as Keras."""
from __future__ import annotations

import numpy as np

from .. import activations
from .base import Cache, Layer, check_choice, check_positive_int
from .conv_general import conv2d_backward, conv2d_forward, conv_out_size, conv_pads


def single(value, name: str) -> int:
    """An int or a one-element list of ints (Keras stores ``kernel_size`` as ``[k]``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"Expected an integer or a 1-tuple for `{name}`, received: {value!r}")
        value = value[0]
    return check_positive_int(value, name)


class Conv1D(Layer):
    """x: (N, T, C) -> (N, To, filters). Weights: ``kernel`` (k, C/groups, filters), ``bias`` (filters,).

    'causal' pads ``(k - 1) * dilation`` steps before the sequence, so output t sees inputs up to t.
    Computed as a 2-D convolution over an image of height 1 (``conv_general``).
    """

    options = {"filters": None, "kernel_size": None, "strides": None, "padding": ("valid", "same", "causal"),
               "activation": None, "use_bias": None, "data_format": (None, "channels_last"),
               "dilation_rate": None, "groups": None}

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid", dilation_rate=1,
                 groups: int = 1, activation=None, use_bias: bool = True, name: str | None = None, **_ignored):
        super().__init__(name)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = single(kernel_size, "kernel_size")
        self.strides = single(strides, "strides")
        self.dilation_rate = single(dilation_rate, "dilation_rate")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"Expected `filters` divisible by `groups`={self.groups}, received: {self.filters}")
        self.padding = check_choice(padding, "padding", ("valid", "same", "causal"))
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict:
        return {"name": self.name, "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate, "groups": self.groups,
                "activation": self.activation, "use_bias": self.use_bias}

    def weight_shapes(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D {self.name!r} expected input of shape (N, T, C), received {input_shape}")
        if input_shape[-1] % self.groups:
            raise ValueError(f"Conv1D {self.name!r}: expected input channels divisible by groups={self.groups}, "
                             f"received {input_shape[-1]}")
        shapes = {"kernel": (self.kernel_size, input_shape[-1] // self.groups, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute_output_shape(self, input_shape):
        n, t, _ = input_shape
        out = None if t is None else conv_out_size(t, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (n, out, self.filters)

    def forward(self, x, mask=None, training=False):
        pads = ((0, 0), conv_pads(x.shape[1], self.kernel_size, self.strides, self.dilation_rate, self.padding))
        z, cache = conv2d_forward(np.asarray(x, self.dtype)[:, None], self.weights["kernel"][None], (1, self.strides),
                                  (1, self.dilation_rate), pads, self.groups)
        z = z[:, 0]
        if self.use_bias:
            z += self.weights["bias"]
        y = self.act(z)
        if training:
            self.cache = Cache(conv=cache, z=z, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, To, filters) -> dx (N, T, C); grads of kernel and bias."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        dx, dkernel = conv2d_backward(dz[:, None], self.weights["kernel"][None], c.conv)
        self.grads = {"kernel": dkernel[0]}
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=(0, 1))
        return dx[:, 0]
