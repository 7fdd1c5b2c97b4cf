"""Layers that move values without arithmetic: ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D
(nearest), Reshape, Permute, RepeatVector. Each backward is the adjoint copy (sums for repeats)."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer, check_positive_int


def _pairs(value, name: str, ndim: int) -> tuple:
    """Keras' padding/cropping forms -> ((before, after),) * ndim: an int, ``ndim`` ints, or ``ndim`` pairs."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * ndim
    value = list(value)
    if ndim == 1 and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        value = [value]
    if len(value) != ndim:
        raise ValueError(f"Expected an int, {ndim} ints or {ndim} pairs for `{name}`, received: {value!r}")
    out = []
    for v in value:
        p = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
        if len(p) != 2 or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0 for i in p):
            raise ValueError(f"Expected non-negative integer pairs for `{name}`, received: {value!r}")
        out.append((int(p[0]), int(p[1])))
    return tuple(out)


def _grow(size, before, after):
    return None if size is None else size + before + after


class _Padding(Layer):
    """Zeros before and after each spatial axis. x: (N, *spatial, C)."""
    supports_masking = False
    options = {"padding": None, "data_format": (None, "channels_last")}
    ndim = 2

    def __init__(self, padding=1, name: str | None = None, **_ignored):
        super().__init__(name)
        self.padding = _pairs(padding, "padding", self.ndim)

    def get_config(self) -> dict:
        return {"name": self.name, "padding": [list(p) for p in self.padding]}

    def compute_output_shape(self, input_shape):
        spatial = [_grow(s, *p) for s, p in zip(input_shape[1:-1], self.padding)]
        return (input_shape[0], *spatial, input_shape[-1])

    def forward(self, x, mask=None, training=False):
        return np.pad(x, ((0, 0), *self.padding, (0, 0)))

    def backward(self, dout):
        return dout[(slice(None), *[slice(b, d - a) for (b, a), d in zip(self.padding, dout.shape[1:-1])])]


class ZeroPadding1D(_Padding):
    ndim = 1


class ZeroPadding2D(_Padding):
    ndim = 2


class _Cropping(Layer):
    """Drops ``cropping`` cells before and after each spatial axis. x: (N, *spatial, C)."""
    options = {"cropping": None, "data_format": (None, "channels_last")}
    ndim = 2

    def __init__(self, cropping=1, name: str | None = None, **_ignored):
        super().__init__(name)
        self.cropping = _pairs(cropping, "cropping", self.ndim)

    def get_config(self) -> dict:
        return {"name": self.name, "cropping": [list(p) for p in self.cropping]}

    def compute_output_shape(self, input_shape):
        spatial = [None if s is None else s - b - a for s, (b, a) in zip(input_shape[1:-1], self.cropping)]
        if any(s is not None and s <= 0 for s in spatial):
            raise ValueError(f"{type(self).__name__} {self.name!r}: cropping {self.cropping} leaves nothing of "
                             f"input {input_shape}")
        return (input_shape[0], *spatial, input_shape[-1])

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x_shape=x.shape)
        return x[(slice(None), *[slice(b, s - a) for (b, a), s in zip(self.cropping, x.shape[1:-1])])]

    def backward(self, dout):
        dx = np.zeros(self.cache.x_shape, dout.dtype)
        dx[(slice(None), *[slice(b, s - a) for (b, a), s in zip(self.cropping, dx.shape[1:-1])])] = dout
        return dx


class Cropping1D(_Cropping):
    ndim = 1


class Cropping2D(_Cropping):
    ndim = 2


class _UpSampling(Layer):
    """Nearest-neighbour upsampling: each cell repeated ``size`` times along each spatial axis."""
    ndim = 2

    def _sizes(self) -> tuple:
        return self.size

    def compute_output_shape(self, input_shape):
        spatial = [None if s is None else s * k for s, k in zip(input_shape[1:-1], self._sizes())]
        return (input_shape[0], *spatial, input_shape[-1])

    def forward(self, x, mask=None, training=False):
        for axis, k in enumerate(self._sizes(), start=1):
            x = np.repeat(x, k, axis=axis)
        return x

    def backward(self, dout):
        n, c = dout.shape[0], dout.shape[-1]
        sizes = self._sizes()
        shape = [n]
        for s, k in zip(dout.shape[1:-1], sizes):
            shape += [s // k, k]
        return dout.reshape(*shape, c).sum(axis=tuple(range(2, 2 * len(sizes) + 1, 2)))


class UpSampling1D(_UpSampling):
    options = {"size": None}
    ndim = 1

    def __init__(self, size: int = 2, name: str | None = None):
        super().__init__(name)
        self.size = (check_positive_int(size, "size"),)

    def get_config(self) -> dict:
        return {"name": self.name, "size": self.size[0]}


class UpSampling2D(_UpSampling):
    options = {"size": None, "interpolation": ("nearest",), "data_format": (None, "channels_last")}

    def __init__(self, size=(2, 2), interpolation: str = "nearest", name: str | None = None, **_ignored):
        super().__init__(name)
        if interpolation != "nearest":
            raise ValueError(f"Expected `interpolation`='nearest', received: {interpolation!r}")
        size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(size) != 2:
            raise ValueError(f"Expected an int or a pair of ints for `size`, received: {size!r}")
        self.size = tuple(check_positive_int(s, "size") for s in size)

    def get_config(self) -> dict:
        return {"name": self.name, "size": list(self.size), "interpolation": "nearest"}


class Reshape(Layer):
    """(N, ...) -> (N, *target_shape); one entry of ``target_shape`` may be -1 (inferred)."""

    supports_masking = False
    options = {"target_shape": None}

    def __init__(self, target_shape, name: str | None = None):
        super().__init__(name)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d == 0 or d < -1 for d in self.target_shape):
            raise ValueError(f"Expected positive sizes and at most one -1 in `target_shape`, received: {target_shape!r}")

    def get_config(self) -> dict:
        return {"name": self.name, "target_shape": list(self.target_shape)}

    def compute_output_shape(self, input_shape):
        known = [d for d in input_shape[1:]]
        if -1 not in self.target_shape or any(d is None for d in known):
            shape = self.target_shape
        else:
            total, rest = int(np.prod(known)), int(np.prod([d for d in self.target_shape if d != -1]))
            if total % rest:
                raise ValueError(f"Reshape {self.name!r}: cannot reshape {tuple(known)} to {self.target_shape}")
            shape = tuple(total // rest if d == -1 else d for d in self.target_shape)
        if all(d is not None for d in known) and int(np.prod(shape)) != int(np.prod(known)):
            raise ValueError(f"Reshape {self.name!r}: expected a target shape of {int(np.prod(known))} values "
                             f"for input {input_shape}, received {self.target_shape}")
        return (input_shape[0], *shape)

    def forward(self, x, mask=None, training=False):
        if training:
            self.cache = Cache(x_shape=x.shape)
        return x.reshape(len(x), *self.target_shape)

    def backward(self, dout):
        return dout.reshape(self.cache.x_shape)


class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is 1-based, as Keras' (``(2, 1)`` swaps the two axes)."""

    options = {"dims": None}

    def __init__(self, dims, name: str | None = None):
        super().__init__(name)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Expected `dims` to be a permutation of 1..{len(self.dims)}, received: {dims!r}")

    def get_config(self) -> dict:
        return {"name": self.name, "dims": list(self.dims)}

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute {self.name!r} expected input of rank {len(self.dims) + 1}, received {input_shape}")
        return (input_shape[0], *[input_shape[d] for d in self.dims])

    def forward(self, x, mask=None, training=False):
        return x.transpose(0, *self.dims)

    def backward(self, dout):
        return dout.transpose(0, *[int(i) + 1 for i in np.argsort(self.dims)])


class RepeatVector(Layer):
    """(N, D) -> (N, n, D): the vector repeated ``n`` times."""

    options = {"n": None}

    def __init__(self, n: int, name: str | None = None):
        super().__init__(name)
        self.n = check_positive_int(n, "n")

    def get_config(self) -> dict:
        return {"name": self.name, "n": self.n}

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector {self.name!r} expected input of shape (N, D), received {input_shape}")
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, mask=None, training=False):
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dout):
        return dout.sum(axis=1)
