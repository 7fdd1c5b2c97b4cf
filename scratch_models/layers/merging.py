"""Layers that merge several inputs of a functional graph: Add, Subtract, Multiply, Average,
Maximum, Minimum (element-wise, the masks ANDed) and Concatenate."""
from __future__ import annotations

import functools

import numpy as np

from .base import Layer


class _Merge(Layer):
    supports_masking = True

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def merge(self, xs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def forward(self, xs, mask=None, training=False):
        xs = list(xs)
        out = self.merge(xs)
        if training:
            self.cache = (xs, out)
        return out

    def backward(self, dout):
        """A list with the gradient of each input."""
        xs, out = self.cache
        return self.split_gradient(dout, xs, out)

    def split_gradient(self, dout, xs, out) -> list:
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def compute_mask(self, xs, masks):
        masks = [m for m in (masks or []) if m is not None]
        return functools.reduce(np.logical_and, masks) if masks else None


class Add(_Merge):
    def merge(self, xs):
        return functools.reduce(np.add, xs)

    def split_gradient(self, dout, xs, out):
        return [dout for _ in xs]


class Subtract(_Merge):
    def merge(self, xs):
        if len(xs) != 2:
            raise ValueError(f"Subtract {self.name!r} expected exactly 2 inputs, received {len(xs)}")
        return xs[0] - xs[1]

    def split_gradient(self, dout, xs, out):
        return [dout, -dout]


class Multiply(_Merge):
    def merge(self, xs):
        return functools.reduce(np.multiply, xs)

    def split_gradient(self, dout, xs, out):
        return [dout * functools.reduce(np.multiply, xs[:i] + xs[i + 1:], np.float32(1)) for i in range(len(xs))]


class Average(_Merge):
    def merge(self, xs):
        return functools.reduce(np.add, xs) / np.float32(len(xs))

    def split_gradient(self, dout, xs, out):
        return [dout / np.float32(len(xs)) for _ in xs]


class Maximum(_Merge):
    def merge(self, xs):
        return functools.reduce(np.maximum, xs)


class Minimum(_Merge):
    def merge(self, xs):
        return functools.reduce(np.minimum, xs)


class Concatenate(_Merge):
    options = {"axis": None}

    def __init__(self, axis: int = -1, name: str | None = None):
        super().__init__(name)
        self.axis = int(axis)

    def get_config(self) -> dict:
        return {"name": self.name, "axis": self.axis}

    def compute_output_shape(self, input_shapes):
        axis = self.axis % len(input_shapes[0])
        size = sum(s[axis] for s in input_shapes)
        return tuple(size if i == axis else d for i, d in enumerate(input_shapes[0]))

    def merge(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def split_gradient(self, dout, xs, out):
        bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.split(dout, bounds, axis=self.axis)

    def compute_mask(self, xs, masks):
        if masks and any(m is not None for m in masks):
            if self.axis % xs[0].ndim != xs[0].ndim - 1:
                raise NotImplementedError(f"Concatenate {self.name!r}: masked inputs joined along axis {self.axis}")
            return super().compute_mask(xs, masks)
        return None
