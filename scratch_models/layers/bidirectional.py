"""Bidirectional: a forward and a backward copy of a recurrent layer, merged."""
from __future__ import annotations

import numpy as np

from ..threads import single_threaded_blas
from .base import Cache, Layer
from . import recurrent
from .recurrent import _Recurrent

#: Inference runs both directions in one time loop (``Bidirectional._forward_fused``) when it can;
#: False runs them one after the other, as training does (for comparisons).
FUSED_INFERENCE = True


class _Schedule:
    """Where the fused loop of ``Bidirectional`` reads and keeps what, for a (N, T) mask.

    Rows are sorted by decreasing number of unmasked steps (``rank``: each row's place); step j runs
    the first ``active[j]`` sorted rows. The h of sorted row r after m steps is row ``start[m] + r``
    of each direction's h, ``start[0] = 0`` being a block of N zero rows (the initial state, and the
    output of masked steps). ``inputs`` (2, total): the flat index (row * T + time) of the input
    each (direction, step, sorted row) reads, in that order.
    """

    def __init__(self, mask: np.ndarray):
        n, t = mask.shape
        self.mask, self.lengths = mask, mask.sum(axis=1)
        self.rank = np.empty(n, np.intp)
        self.rank[np.argsort(-self.lengths, kind="stable")] = np.arange(n)
        steps = int(self.lengths.max(initial=0))
        self.active = (self.lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1)
        self.total = int(self.active.sum())
        self.start = np.zeros(steps + 1, np.intp)
        self.start[1:] = n + np.cumsum(self.active) - self.active
        self.done = np.cumsum(mask, axis=1)  # unmasked steps up to and including each t
        rows, times = np.nonzero(mask)
        before = self.done[rows, times] - 1  # unmasked steps before (rows, times)
        self.inputs = np.empty((2, self.total), np.intp)
        self.inputs[0, self.start[before + 1] - n + self.rank[rows]] = rows * t + times
        self.inputs[1, self.start[self.lengths[rows] - before] - n + self.rank[rows]] = rows * t + times

    def outputs(self, return_sequences: bool, zero_output_for_mask: bool) -> np.ndarray:
        """Rows of h.reshape(-1, units) (both directions, the backward's after the forward's) holding
        the outputs: (N, T, 2), the h after the unmasked steps up to t (forward) or from t on
        (backward), or (N, 2), the h after all of them. A masked step outputs zeros with
        ``zero_output_for_mask`` (h after 0 steps), else the previous output."""
        n = len(self.lengths)
        if return_sequences:
            shown = self.mask | (not zero_output_for_mask)
            steps = np.stack([np.where(shown, self.done, 0),
                              np.where(shown, self.lengths[:, None] - self.done + self.mask, 0)], axis=-1)
            where = self.start[steps] + self.rank[:, None, None]
        else:
            where = (self.start[self.lengths] + self.rank)[:, None].repeat(2, axis=1)
        where[..., 1] += n + self.total
        return where


class Bidirectional(Layer):
    """Runs ``forward_layer`` and ``backward_layer`` (``go_backwards=True``) and merges their outputs.

    With ``return_sequences`` the backward output is flipped back in time before merging and masked
    steps output zeros (Keras sets ``zero_output_for_mask``). Weights: the forward layer's, then
    the backward layer's, as Keras' ``get_weights()``.
    merge_mode: concat (N, ..., 2u) | sum | ave | mul (N, ..., u). At inference both directions run
    in one time loop when they can (``_forward_fused``): half the steps, each a batched product.
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
        if not training and FUSED_INFERENCE and self._fusable(mask):
            with single_threaded_blas(), np.errstate(over="ignore"):  # see _Recurrent.step_stacked
                return self._forward_fused(np.asarray(x, self.forward_layer.dtype), mask)
        y_fw = self.forward_layer.forward(x, mask, training)
        y_bw = self.backward_layer.forward(x, mask, training)
        if self.return_sequences:
            y_bw = y_bw[:, ::-1]
        if training:
            self.cache = Cache(y_fw=y_fw, y_bw=y_bw)
        return self._merge(y_fw, y_bw)

    def _fusable(self, mask) -> bool:
        """The fused loop needs two stackable cells, the usual directions, and no mask or a padding mask
        (the masks the packed loop of one layer takes; other masks run the two layers one by one)."""
        fw, bw = self.forward_layer, self.backward_layer
        return (not fw.go_backwards and bw.go_backwards and fw.stacks_with(bw)
                and (mask is None or recurrent.packed_order(np.asarray(mask, bool)) is not None))

    def _forward_fused(self, x: np.ndarray, mask) -> np.ndarray:
        """Inference of both directions in one time loop, merged; the same numbers as the two layers' loops.

        A masked step keeps the state, so a direction's state after m steps is the recurrence over the
        first m unmasked inputs of its row, forwards for the forward layer and backwards for the
        backward one. Step j therefore feeds the forward layer each row's j-th unmasked input and the
        backward layer its j-th from the end; with rows sorted by decreasing length, the rows still
        running at step j are a prefix for both, so each step is one batched product of the stacked
        states (2, k, units) by the stacked recurrent kernels. The input projections cover the
        unmasked steps only, in one batched product. Every step's h is kept, and the outputs are
        gathered from it at the end.
        """
        fw, bw = self.forward_layer, self.backward_layer
        n, t, d_in = x.shape
        mask = np.ones((n, t), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (n, t):
            raise ValueError(f"Bidirectional {self.name!r} expected a mask of shape {(n, t)} for input of shape "
                             f"{x.shape}, received {mask.shape}")
        s = _Schedule(mask)
        u, g = fw.units, fw.gates * fw.units
        kernel, recurrent_kernel = np.empty((2, d_in, g), x.dtype), np.empty((2, u, g), x.dtype)
        bias = np.empty((2, 1, g), x.dtype)
        for d, layer in enumerate((fw, bw)):
            layer.stacked_weights_into(kernel[d], recurrent_kernel[d], bias[d, 0])
        # Gathers by np.take: it copies whole rows, several times faster here than fancy indexing.
        xw = np.matmul(np.take(x.reshape(n * t, d_in), s.inputs, axis=0), kernel)  # (2, total, gates*units)
        xw += bias
        h = np.zeros((2, n + s.total, u), x.dtype)  # h[:, start[m] + r]: sorted row r after m steps
        carries = tuple(np.zeros((2, n, u), x.dtype) for _ in fw.initial_state(0)[1:])  # the LSTM's c
        z = np.empty((2, n, g), x.dtype)
        step, start = fw.step_stacked, s.start.tolist()  # Python ints: slicing with them is faster
        for j, k in enumerate(s.active.tolist()):
            prev, new = start[j], start[j + 1]
            state = (h[:, new:new + k], *[c[:, :k] for c in carries])
            step(xw[:, new - n:new - n + k], h[:, prev:prev + k], state, z[:, :k], recurrent_kernel)
        where = s.outputs(self.return_sequences, fw.zero_output_for_mask)
        y = np.take(h.reshape(-1, u), where, axis=0)  # (N, [T,] 2, units)
        if self.merge_mode == "concat":  # the gather already placed the directions side by side
            return y.reshape(*y.shape[:-2], 2 * u)
        return self._merge(y[..., 0, :], y[..., 1, :])

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
