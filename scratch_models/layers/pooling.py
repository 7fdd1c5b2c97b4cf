"""Max and average pooling over images (2-D) and sequences (global, 1-D), as Keras computes them."""
from __future__ import annotations

import numpy as np

from .base import Layer, check_choice, pair
from .convolution import output_size, pad_images, windows


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


class MaxPooling2D(_Pooling2D):
    """Maximum over each window. x: (N, H, W, C) -> (N, Ho, Wo, C); 'same' pads with -inf."""

    def forward(self, x, mask=None, training=False):
        tiles = self._tiles(x)
        if tiles is not None:
            return tiles.max(axis=(2, 4))
        xp = pad_images(x, self.pool_size, self.strides, self.padding, value=-np.inf)
        return windows(xp, self.pool_size, self.strides).max(axis=(-2, -1))


class AveragePooling2D(_Pooling2D):
    """Mean over each window; a 'same'-padded window divides by its number of real cells, as Keras."""

    def forward(self, x, mask=None, training=False):
        tiles = self._tiles(x)
        if tiles is not None:
            return tiles.mean(axis=(2, 4), dtype=np.float32)
        xp = pad_images(x, self.pool_size, self.strides, self.padding)
        sums = windows(xp, self.pool_size, self.strides).sum(axis=(-2, -1), dtype=np.float32)
        ones = pad_images(np.ones((1, *x.shape[1:3], 1), np.float32), self.pool_size, self.strides, self.padding)
        counts = windows(ones, self.pool_size, self.strides).sum(axis=(-2, -1))
        return sums / counts


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
        return x.max(axis=self.axes, keepdims=self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): mean over all positions."""
    axes = (1, 2)

    def forward(self, x, mask=None, training=False):
        return x.mean(axis=self.axes, keepdims=self.keepdims, dtype=np.float32)


class GlobalMaxPooling1D(_GlobalPooling):
    """(N, T, C) -> (N, C): maximum over time (Keras ignores the mask here)."""
    axes = (1,)

    def forward(self, x, mask=None, training=False):
        return x.max(axis=1, keepdims=self.keepdims)


class GlobalAveragePooling1D(_GlobalPooling):
    """(N, T, C) -> (N, C): mean over the unmasked time steps (all of them without a mask)."""
    axes = (1,)
    supports_masking = True

    def forward(self, x, mask=None, training=False):
        if mask is None:
            return x.mean(axis=1, keepdims=self.keepdims, dtype=np.float32)
        m = mask.astype(np.float32)[:, :, None]
        return (x * m).sum(axis=1, keepdims=self.keepdims) / m.sum(axis=1, keepdims=self.keepdims)

    def compute_mask(self, x, mask):
        return None
