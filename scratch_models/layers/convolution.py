"""Conv2D: cross-correlation over channels-last images, as Keras."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import activations
from .base import Cache, Layer, check_choice, check_positive_int, pair
from .conv_general import conv2d_backward, conv2d_forward, conv_out_size, conv_pads

#: Upper bound on the im2col buffer of one chunk of the batch (elements): bounded memory for any batch.
IM2COL_CHUNK_ELEMENTS = 1 << 22


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding along one axis: the extra cell goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


def pad_images(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding: str,
               value: float = 0.0) -> np.ndarray:
    """Pad (N, H, W, C) for a 'same' window; 'valid' returns ``x`` unchanged."""
    if padding == "valid":
        return x
    (pt, pb), (pl, pr) = (same_padding(x.shape[1], kernel[0], strides[0]),
                          same_padding(x.shape[2], kernel[1], strides[1]))
    if pt == pb == pl == pr == 0:
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def same_pads(x_shape: tuple, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of an (N, H, W, C) input."""
    if padding == "valid":
        return 0, 0, 0, 0
    return (*same_padding(x_shape[1], kernel[0], strides[0]), *same_padding(x_shape[2], kernel[1], strides[1]))


def window_offsets(kernel: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]):
    """For every kernel offset (i, j): its flat index and the strided slices it reads in a padded input.

    Loops over these (kh*kw of them) are how im2col, col2im and the pooling gradients stay vectorized.
    """
    (kh, kw), (sh, sw), (ho, wo) = kernel, strides, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """A strided view (N, Ho, Wo, C, kh, kw) of every window of an already padded (N, H, W, C)."""
    return sliding_window_view(x, kernel, axis=(1, 2))[:, ::strides[0], ::strides[1]]


class Conv2D(Layer):
    """2-D convolution (cross-correlation, channels last). x: (N, H, W, C) -> (N, Ho, Wo, filters).

    Weights: ``kernel`` (kh, kw, C, filters), ``bias`` (filters,). Computed as im2col + one matrix
    product per chunk of the batch, so any kernel size (even, large) and any stride work alike.
    (``Model.predict`` runs faster routes to the same values: scratch_models/inference/conv.py.)
    """

    options = {"filters": None, "kernel_size": None, "strides": None, "padding": ("valid", "same"),
               "activation": None, "use_bias": None, "data_format": (None, "channels_last"),
               "dilation_rate": None, "groups": None}

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 activation=None, use_bias: bool = True, dilation_rate=(1, 1), groups: int = 1,
                 name: str | None = None, **_ignored):
        super().__init__(name)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        # Dilation and groups run through conv_general (textbook im2col with dilated offsets, one product per group).
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"Expected `filters` divisible by `groups`={self.groups}, received: {self.filters}")
        self.padding = check_choice(padding, "padding", ("valid", "same"))
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)

    def get_config(self) -> dict:
        return {"name": self.name, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "activation": self.activation, "use_bias": self.use_bias,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups}

    @property
    def general(self) -> bool:
        """True with dilation or groups: computed by conv_general."""
        return self.dilation_rate != (1, 1) or self.groups != 1

    def weight_shapes(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Conv2D {self.name!r} expected input of shape (N, H, W, C), received {input_shape}")
        if input_shape[-1] % self.groups:
            raise ValueError(f"Conv2D {self.name!r}: expected input channels divisible by groups={self.groups}, "
                             f"received {input_shape[-1]}")
        shapes = {"kernel": (*self.kernel_size, input_shape[-1] // self.groups, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        if self.general:
            return (n, *[None if s is None else conv_out_size(s, k, st, d, self.padding) for s, k, st, d in
                         zip((h, w), self.kernel_size, self.strides, self.dilation_rate)], self.filters)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        return (n, output_size(h, kh, sh, self.padding), output_size(w, kw, sw, self.padding), self.filters)

    def _output_hw(self, x: np.ndarray) -> tuple[int, int]:
        """(Ho, Wo) of the output for input ``x``; an error if the input is smaller than the kernel."""
        _, ho, wo, _ = self.compute_output_shape(x.shape)
        if ho <= 0 or wo <= 0:
            raise ValueError(f"Conv2D {self.name!r}: input {x.shape[1:3]} is smaller than the kernel {self.kernel_size}")
        return ho, wo

    def forward(self, x, mask=None, training=False):
        if self.general:
            return self._forward_general(x, training)
        kh, kw = self.kernel_size
        kernel = self.weights["kernel"]
        k2d = kernel.reshape(kh * kw * kernel.shape[2], self.filters)  # rows ordered (i, j, c)
        n = len(x)
        ho, wo = self._output_hw(x)
        xp = pad_images(x, self.kernel_size, self.strides, self.padding)
        out = np.empty((n, ho, wo, self.filters), self.dtype)
        per_item = ho * wo * k2d.shape[0]
        step = max(1, IM2COL_CHUNK_ELEMENTS // per_item)
        for start in range(0, n, step):  # chunks of the batch, not items: bounded memory
            win = windows(xp[start:start + step], self.kernel_size, self.strides)  # (n, ho, wo, C, kh, kw)
            cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k2d.shape[0])
            out[start:start + step] = (cols @ k2d).reshape(-1, ho, wo, self.filters)
        if self.use_bias:
            out += self.weights["bias"]
        y = self.act(out)
        if training:
            self.cache = Cache(x_shape=x.shape, xp=xp, z=out, y=y, out_hw=(ho, wo))
        return y

    def _forward_general(self, x, training):
        pads = tuple(conv_pads(s, k, st, d, self.padding)
                     for s, k, st, d in zip(x.shape[1:3], self.kernel_size, self.strides, self.dilation_rate))
        z, conv = conv2d_forward(np.asarray(x, self.dtype), self.weights["kernel"], self.strides, self.dilation_rate,
                                 pads, self.groups)
        if self.use_bias:
            z += self.weights["bias"]
        y = self.act(z)
        if training:
            self.cache = Cache(conv=conv, z=z, y=y)
        return y

    def backward(self, dout, pre_activation: bool = False):
        """dout: (N, Ho, Wo, filters) -> dx (N, H, W, C); grads of kernel and bias."""
        c = self.cache
        dz = dout if pre_activation else activations.backward(self.activation, dout, c.z, c.y)
        if self.general:
            dx, dkernel = conv2d_backward(dz, self.weights["kernel"], c.conv)
            self.grads = {"kernel": dkernel}
            if self.use_bias:
                self.grads["bias"] = dz.sum(axis=(0, 1, 2))
            return dx
        kh, kw = self.kernel_size
        kernel = self.weights["kernel"]
        cin = kernel.shape[2]
        k2d = kernel.reshape(kh * kw * cin, self.filters)
        d2 = dz.reshape(-1, self.filters)
        cols = windows(c.xp, self.kernel_size, self.strides).transpose(0, 1, 2, 4, 5, 3).reshape(-1, k2d.shape[0])
        self.grads = {"kernel": (cols.T @ d2).reshape(kernel.shape)}
        if self.use_bias:
            self.grads["bias"] = d2.sum(axis=0)
        dcols = (d2 @ k2d.T).reshape(*dz.shape[:3], kh * kw, cin)
        dxp = np.zeros(c.xp.shape, self.dtype)
        for k, region in window_offsets(self.kernel_size, self.strides, c.out_hw):  # col2im
            dxp[region] += dcols[:, :, :, k]
        pt, _, pl, _ = same_pads(c.x_shape, self.kernel_size, self.strides, self.padding)
        return dxp[:, pt:pt + c.x_shape[1], pl:pl + c.x_shape[2]]
