"""Embedding: token ids -> vectors, with id 0 as padding when ``mask_zero``."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer, check_positive_int


class Embedding(Layer):
    """ids (N, T) int -> (N, T, output_dim). Weights: ``embeddings`` (input_dim, output_dim).

    With ``mask_zero`` the output mask is ``ids != 0`` (N, T), which recurrent layers and
    ``GlobalAveragePooling1D`` honour downstream.
    """

    options = {"input_dim": None, "output_dim": None, "mask_zero": None, "lora_rank": (None,), "lora_alpha": None}

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False, name: str | None = None, **_ignored):
        super().__init__(name)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.mask_zero = bool(mask_zero)

    @property
    def supports_masking(self):  # type: ignore[override]
        return self.mask_zero

    def get_config(self) -> dict:
        return {"name": self.name, "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero}

    def weight_shapes(self, input_shape):
        return {"embeddings": (self.input_dim, self.output_dim)}

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def check_ids(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"Embedding {self.name!r} expected integer token ids, received dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            raise ValueError(f"Embedding {self.name!r} expected token ids in [0, {self.input_dim - 1}], "
                             f"received values in [{ids.min()}, {ids.max()}]")
        return ids

    def forward(self, x, mask=None, training=False):
        ids = self.check_ids(x)
        if training:
            self.cache = Cache(ids=ids)
        return self.weights["embeddings"][ids]

    def backward(self, dout):
        """dout: (N, T, output_dim). Only the rows of the ids used receive gradient (summed over
        repeats); ids get none.

        TensorFlow gives this gradient as ``IndexedSlices`` (one row per occurrence, repeats not
        summed) and Keras' Adam/RMSprop square it row by row before summing, so their g² is
        ``Σ g_i²`` over the repeats of an id, not ``(Σ g_i)²``: kept in ``grad_squares``.
        """
        ids, rows = self.cache.ids.reshape(-1), dout.reshape(-1, self.output_dim)
        grad = np.zeros_like(self.weights["embeddings"])
        np.add.at(grad, ids, rows)
        squares = np.zeros_like(grad)
        np.add.at(squares, ids, rows * rows)
        self.grads = {"embeddings": grad}
        self.grad_squares = {"embeddings": squares}
        return None

    def compute_mask(self, x, mask):
        return np.asarray(x) != 0 if self.mask_zero else None
