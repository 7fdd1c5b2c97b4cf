"""Max and average pooling over images (2-D) and sequences (global, 1-D), as Keras computes them."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer, check_choice, pair
from .convolution import output_size, pad_images, same_pads, window_offsets, windows


class _Pooling2D(Layer):
    options = {"pool_size": None, "strides": None, "padding": ("valid", "same"),
               "data_format": (None, "channels_last")}

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", name: str | None = None, **_ignored):
        super().__init__(name)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")  # Keras: None = pool size
        self.padding = check_choice(padding, "padding", ("valid", "same"))

    def get_config(self) -> dict:
        return {"name": self.name, "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, output_size(h, self.pool_size[0], self.strides[0], self.padding),
                output_size(w, self.pool_size[1], self.strides[1], self.padding), c)

    def _tiles(self, x: np.ndarray):
        """(N, H/p, p, W/q, q, C) view when windows tile the image exactly (the common 2x2/2 case)."""
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        n, h, w, c = x.shape
        if (ph, pw) == (sh, sw) and h % ph == 0 and w % pw == 0:
            return x.reshape(n, h // ph, ph, w // pw, pw, c)
        return None

    def _scatter(self, x_shape, dwin: "callable", out_hw, dtype) -> np.ndarray:
        """col2im for pooling: add ``dwin(k)`` (N, Ho, Wo, C) of every window offset k into dx."""
        pt, pb, pl, pr = same_pads(x_shape, self.pool_size, self.strides, self.padding)
        n, h, w, c = x_shape
        dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype)
        for k, region in window_offsets(self.pool_size, self.strides, out_hw):
            dxp[region] += dwin(k)
        return dxp[:, pt:pt + h, pl:pl + w]


class MaxPooling2D(_Pooling2D):
    """Maximum over each window. x: (N, H, W, C) -> (N, Ho, Wo, C); 'same' pads with -inf.

    The gradient goes to the first maximum of each window in row-major order, as TensorFlow's.
    """

    def forward(self, x, mask=None, training=False):
        xp = pad_images(x, self.pool_size, self.strides, self.padding, value=-np.inf)
        win = windows(xp, self.pool_size, self.strides)  # (N, Ho, Wo, C, ph, pw)
        out = win.max(axis=(-2, -1))
        if training:
            argmax = win.reshape(*win.shape[:4], -1).argmax(axis=-1)
            self.cache = Cache(x_shape=x.shape, argmax=argmax)
        return out

    def backward(self, dout):
        c = self.cache
        return self._scatter(c.x_shape, lambda k: dout * (c.argmax == k), dout.shape[1:3], dout.dtype)


class AveragePooling2D(_Pooling2D):
    """Mean over each window; a 'same'-padded window divides by its number of real cells, as Keras."""

    def _counts(self, x_shape) -> np.ndarray:
        ones = pad_images(np.ones((1, *x_shape[1:3], 1), np.float32), self.pool_size, self.strides, self.padding)
        return windows(ones, self.pool_size, self.strides).sum(axis=(-2, -1))  # (1, Ho, Wo, 1)

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x_shape=x.shape)
        tiles = self._tiles(x)
        if tiles is not None:
            return tiles.mean(axis=(2, 4), dtype=x.dtype)
        xp = pad_images(x, self.pool_size, self.strides, self.padding)
        sums = windows(xp, self.pool_size, self.strides).sum(axis=(-2, -1), dtype=x.dtype)
        return sums / self._counts(x.shape)

    def backward(self, dout):
        share = dout / self._counts(self.cache.x_shape)
        return self._scatter(self.cache.x_shape, lambda k: share, dout.shape[1:3], share.dtype)


class _GlobalPooling(Layer):
    options = {"keepdims": None, "data_format": (None, "channels_last")}
    axes: tuple[int, ...] = ()

    def __init__(self, keepdims: bool = False, name: str | None = None, **_ignored):
        super().__init__(name)
        self.keepdims = bool(keepdims)

    def get_config(self) -> dict:
        return {"name": self.name, "keepdims": self.keepdims}

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return tuple(1 if i in self.axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in self.axes)


class GlobalMaxPooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): maximum over all positions."""
    axes = (1, 2)

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x=x)
        return x.max(axis=self.axes, keepdims=self.keepdims)

    def backward(self, dout):
        return _max_backward(self.cache.x, dout, self.axes, self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): mean over all positions."""
    axes = (1, 2)

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x_shape=x.shape)
        return x.mean(axis=self.axes, keepdims=self.keepdims, dtype=x.dtype)

    def backward(self, dout):
        shape = self.cache.x_shape
        d = dout if self.keepdims else np.expand_dims(dout, self.axes)
        return np.broadcast_to(d / d.dtype.type(shape[1] * shape[2]), shape).astype(d.dtype)


class GlobalMaxPooling1D(_GlobalPooling):
    """(N, T, C) -> (N, C): maximum over time (Keras ignores the mask here)."""
    axes = (1,)

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x=x)
        return x.max(axis=1, keepdims=self.keepdims)

    def backward(self, dout):
        return _max_backward(self.cache.x, dout, self.axes, self.keepdims)


class GlobalAveragePooling1D(_GlobalPooling):
    """(N, T, C) -> (N, C): mean over the unmasked time steps (all of them without a mask)."""
    axes = (1,)
    supports_masking = True

    def forward(self, x, mask=None, training=False):
        m = np.ones((*x.shape[:2], 1), x.dtype) if mask is None else mask.astype(x.dtype)[:, :, None]
        if training:
            self.cache = Cache(m=m)
        if mask is None:
            return x.mean(axis=1, keepdims=self.keepdims, dtype=x.dtype)
        return (x * m).sum(axis=1, keepdims=self.keepdims) / m.sum(axis=1, keepdims=self.keepdims)

    def backward(self, dout):
        m = self.cache.m  # (N, T, 1)
        d = dout if self.keepdims else dout[:, None, :]
        return (d * m / m.sum(axis=1, keepdims=True)).astype(d.dtype)

    def compute_mask(self, x, mask):
        return None


def _max_backward(x: np.ndarray, dout: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Gradient of a reduce-max: shared equally by tied maxima, as TensorFlow's."""
    d = dout if keepdims else np.expand_dims(dout, axes)
    is_max = (x == x.max(axis=axes, keepdims=True)).astype(x.dtype)
    return d * is_max / is_max.sum(axis=axes, keepdims=True)
