"""MaxPooling1D and AveragePooling1D over (N, T, C) sequences: the 2-D pooling layers over an
image of height 1 (the same windows, 'same' padding and average counts as Keras)."""
from __future__ import annotations

from .base import Layer, check_choice
from .conv1d import single
from .pooling import AveragePooling2D, MaxPooling2D


class _Pooling1D(Layer):
    options = {"pool_size": None, "strides": None, "padding": ("valid", "same"),
               "data_format": (None, "channels_last")}
    pooling_2d: type = MaxPooling2D

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", name: str | None = None, **_ignored):
        super().__init__(name)
        self.pool_size = single(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else single(strides, "strides")  # Keras: None = pool size
        self.padding = check_choice(padding, "padding", ("valid", "same"))
        self.pool = self.pooling_2d((1, self.pool_size), (1, self.strides), self.padding, name=f"{self.name}/2d")

    def get_config(self) -> dict:
        return {"name": self.name, "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expected input of shape (N, T, C), "
                             f"received {input_shape}")
        n, t, c = input_shape
        return (n, *self.pool.compute_output_shape((n, 1, t, c))[2:])

    def forward(self, x, mask=None, training=False):
        """x: (N, T, C) -> (N, To, C)."""
        return self.pool.forward(x[:, None], training=training)[:, 0]

    def backward(self, dout):
        return self.pool.backward(dout[:, None])[:, 0]


class MaxPooling1D(_Pooling1D):
    """Maximum over each window of ``pool_size`` steps; 'same' pads with -inf."""
    pooling_2d = MaxPooling2D


class AveragePooling1D(_Pooling1D):
    """Mean over each window; a 'same'-padded window divides by its number of real steps."""
    pooling_2d = AveragePooling2D
