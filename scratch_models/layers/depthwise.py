"""DepthwiseConv2D and SeparableConv2D (channels last), as Keras: every input channel convolved with
its own ``depth_multiplier`` filters; the separable one follows that with a 1x1 convolution."""
from __future__ import annotations

import numpy as np

from .. import activations
from .base import Cache, Layer, check_choice, check_positive_int, pair
from .conv_general import (
    conv_out_size,
    conv_pads,
    depthwise_backward,
    depthwise_forward,
)

CONV_OPTIONS = {"kernel_size": None, "strides": None, "padding": ("valid", "same"), "depth_multiplier": None,
                "data_format": (None, "channels_last"), "dilation_rate": None, "activation": None, "use_bias": None}
IGNORED = ("depthwise_initializer", "pointwise_initializer", "depthwise_regularizer", "pointwise_regularizer",
           "depthwise_constraint", "pointwise_constraint")


class DepthwiseConv2D(Layer):
    """x: (N, H, W, C) -> (N, Ho, Wo, C * depth_multiplier), output channel ``c * M + m``.

    Weights: ``kernel`` (kh, kw, C, M), ``bias`` (C * M,) (Keras 3's names).
    """

    depthwise_key = "kernel"

    options = {**CONV_OPTIONS, **{k: None for k in IGNORED}}  # training-only settings

    def __init__(self, kernel_size, strides=(1, 1), padding: str = "valid", depth_multiplier: int = 1,
                 dilation_rate=(1, 1), activation=None, use_bias: bool = True, name: str | None = None, **_ignored):
        super().__init__(name)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.padding = check_choice(padding, "padding", ("valid", "same"))
        self.depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier")
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict:
        return {"name": self.name, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": list(self.dilation_rate), "activation": self.activation, "use_bias": self.use_bias}

    def _check_rank(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r} expected input of shape (N, H, W, C), "
                             f"received {input_shape}")

    def weight_shapes(self, input_shape):
        self._check_rank(input_shape)
        shapes = {self.depthwise_key: (*self.kernel_size, input_shape[-1], self.depth_multiplier)}
        if self.use_bias:
            shapes["bias"] = (input_shape[-1] * self.depth_multiplier,)
        return shapes

    def _spatial_out(self, input_shape) -> tuple:
        return tuple(None if s is None else conv_out_size(s, k, st, d, self.padding)
                     for s, k, st, d in zip(input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._spatial_out(input_shape), input_shape[-1] * self.depth_multiplier)

    def _pads(self, x_shape) -> tuple:
        return tuple(conv_pads(s, k, st, d, self.padding)
                     for s, k, st, d in zip(x_shape[1:3], self.kernel_size, self.strides, self.dilation_rate))

    def depthwise(self, x: np.ndarray):
        """(N, Ho, Wo, C*M) and what ``depthwise_backward`` needs."""
        return depthwise_forward(np.asarray(x, self.dtype), self.weights[self.depthwise_key], self.strides,
                                 self.dilation_rate, self._pads(x.shape))

    def forward(self, x, mask=None, training=False):
        z, conv = self.depthwise(x)
        if self.use_bias:
            z += self.weights["bias"]
        y = self.act(z)
        if training:
            self.cache = Cache(conv=conv, z=z, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, Ho, Wo, C*M) -> dx (N, H, W, C); grads of the depthwise kernel and bias."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        dx, dkernel = depthwise_backward(dz, self.weights[self.depthwise_key], c.conv)
        self.grads = {self.depthwise_key: dkernel}
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=(0, 1, 2))
        return dx


class SeparableConv2D(DepthwiseConv2D):
    """DepthwiseConv2D then a 1x1 convolution to ``filters``: x (N, H, W, C) -> (N, Ho, Wo, filters).

    Weights: ``depthwise_kernel`` (kh, kw, C, M), ``pointwise_kernel`` (1, 1, C * M, filters), ``bias`` (filters,).
    """

    options = {**DepthwiseConv2D.options, "filters": None}
    depthwise_key = "depthwise_kernel"

    def __init__(self, filters: int, kernel_size, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = check_positive_int(filters, "filters")

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters}

    def weight_shapes(self, input_shape):
        self._check_rank(input_shape)
        shapes = {"depthwise_kernel": (*self.kernel_size, input_shape[-1], self.depth_multiplier),
                  "pointwise_kernel": (1, 1, input_shape[-1] * self.depth_multiplier, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._spatial_out(input_shape), self.filters)

    def forward(self, x, mask=None, training=False):
        d, conv = self.depthwise(x)
        z = d @ self.weights["pointwise_kernel"][0, 0]
        if self.use_bias:
            z += self.weights["bias"]
        y = self.act(z)
        if training:
            self.cache = Cache(conv=conv, d=d, z=z, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, Ho, Wo, filters) -> dx (N, H, W, C): through the 1x1 product, then the depthwise part."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        pointwise = self.weights["pointwise_kernel"][0, 0]
        dd = dz @ pointwise.T
        dx, dkernel = depthwise_backward(dd, self.weights["depthwise_kernel"], c.conv)
        self.grads = {"depthwise_kernel": dkernel,
                      "pointwise_kernel": (c.d.reshape(-1, c.d.shape[-1]).T @ dz.reshape(-1, dz.shape[-1]))[None, None]}
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=(0, 1, 2))
        return dx
