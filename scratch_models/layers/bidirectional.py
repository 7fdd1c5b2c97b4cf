"""Bidirectional: a forward and a backward copy of a recurrent layer, merged."""
from __future__ import annotations

import numpy as np

from .base import Cache, Layer
from .recurrent import _Recurrent


class Bidirectional(Layer):
    """Runs ``forward_layer`` and ``backward_layer`` (``go_backwards=True``) and merges their outputs.

    With ``return_sequences`` the backward output is flipped back in time before merging and masked
    steps output zeros (Keras sets ``zero_output_for_mask``). Weights: the forward layer's, then
    the backward layer's, as Keras' ``get_weights()``.
    merge_mode: concat (N, ..., 2u) | sum | ave | mul (N, ..., u). (``Model.predict`` runs both
    directions in one time loop where it can: scratch_models/inference/recurrent.py.)
    """

    supports_masking = True
    options = {"layer": None, "merge_mode": ("concat", "sum", "ave", "mul"), "backward_layer": None}

    def __init__(self, forward_layer: _Recurrent, backward_layer: _Recurrent, merge_mode: str = "concat",
                 name: str | None = None):
        super().__init__(name)
        if merge_mode not in ("concat", "sum", "ave", "mul"):
            raise ValueError(f"Expected `merge_mode` in ('concat', 'sum', 'ave', 'mul'), received: {merge_mode!r}")
        if backward_layer.go_backwards == forward_layer.go_backwards:
            raise ValueError("Expected `backward_layer.go_backwards` to be the opposite of the forward layer's")
        self.forward_layer, self.backward_layer = forward_layer, backward_layer
        self.merge_mode = merge_mode
        self.return_sequences = forward_layer.return_sequences
        for sub in (forward_layer, backward_layer):
            sub.zero_output_for_mask = self.return_sequences

    def get_config(self) -> dict:
        from . import serialize_layer
        return {"name": self.name, "merge_mode": self.merge_mode,
                "forward_layer": serialize_layer(self.forward_layer),
                "backward_layer": serialize_layer(self.backward_layer)}

    @classmethod
    def from_config(cls, config: dict) -> "Bidirectional":
        from . import deserialize_layer
        return cls(deserialize_layer(config["forward_layer"]), deserialize_layer(config["backward_layer"]),
                   config["merge_mode"], config["name"])

    def build(self, input_shape):
        out = self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        self.input_shape = input_shape
        self.weights = {f"forward/{k}": v for k, v in self.forward_layer.weights.items()}
        self.weights.update({f"backward/{k}": v for k, v in self.backward_layer.weights.items()})
        self.output_shape = (*out[:-1], out[-1] * 2) if self.merge_mode == "concat" else out
        self.regularizers = {f"{d}/{k}": v for d, sub in (("forward", self.forward_layer), ("backward", self.backward_layer))
                             for k, v in sub.regularizers.items()}
        self.built = True
        return self.output_shape

    def set_weights(self, weights):
        n = len(self.forward_layer.weights)
        if len(weights) != n + len(self.backward_layer.weights):
            raise ValueError(f"Bidirectional {self.name!r} expected {n + len(self.backward_layer.weights)} "
                             f"weight arrays, received {len(weights)}")
        self.forward_layer.set_weights(weights[:n])
        self.backward_layer.set_weights(weights[n:])
        self.weights = {f"forward/{k}": v for k, v in self.forward_layer.weights.items()}
        self.weights.update({f"backward/{k}": v for k, v in self.backward_layer.weights.items()})

    def astype(self, dtype) -> "Bidirectional":
        super().astype(dtype)
        self.forward_layer.astype(dtype)
        self.backward_layer.astype(dtype)
        self.set_weights(self.forward_layer.get_weights() + self.backward_layer.get_weights())
        return self

    def forward(self, x, mask=None, training=False):
        y_fw = self.forward_layer.forward(x, mask, training)
        y_bw = self.backward_layer.forward(x, mask, training)
        if self.return_sequences:
            y_bw = y_bw[:, ::-1]
        if training:
            self.cache = Cache(y_fw=y_fw, y_bw=y_bw)
        return self._merge(y_fw, y_bw)

    def _merge(self, y_fw, y_bw):
        if self.merge_mode == "concat":
            return np.concatenate([y_fw, y_bw], axis=-1)
        if self.merge_mode == "sum":
            return y_fw + y_bw
        if self.merge_mode == "ave":
            return (y_fw + y_bw) / np.float32(2)
        return y_fw * y_bw

    def backward(self, dout):
        """Split the merged gradient between the two directions and add their input gradients."""
        c = self.cache
        if self.merge_mode == "concat":
            u = self.forward_layer.units
            d_fw, d_bw = dout[..., :u], dout[..., u:]
        elif self.merge_mode == "sum":
            d_fw = d_bw = dout
        elif self.merge_mode == "ave":
            d_fw = d_bw = dout / np.float32(2)
        else:
            d_fw, d_bw = dout * c.y_bw, dout * c.y_fw
        if self.return_sequences:
            d_bw = d_bw[:, ::-1]
        dx = self.forward_layer.backward(np.ascontiguousarray(d_fw)) + self.backward_layer.backward(np.ascontiguousarray(d_bw))
        self.grads = {f"forward/{k}": v for k, v in self.forward_layer.grads.items()}
        self.grads.update({f"backward/{k}": v for k, v in self.backward_layer.grads.items()})
        return dx

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None
