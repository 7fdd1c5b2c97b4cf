"""Recurrent loops at inference: one layer over length-sorted rows, and the two directions of a
Bidirectional stacked in one loop.

* ``RecurrentStep``: a SimpleRNN or LSTM over rows sorted by length (a padding mask makes the rows unmasked
  at any step a prefix), so step i computes only its ``active[i]`` rows, in place, and the others keep
  their state and output, as masking prescribes: the same numbers as the layer's masked loop, with no
  selects and no work on padding. The LSTM's gate blocks are reordered once (i, f, o, c: one sigmoid per
  step for the three sigmoid gates; a column permutation, exact).
* ``BidirectionalStep``: both directions in one time loop of batched products of the stacked states
  (2, k, units) by the stacked recurrent kernels: half the steps.

Weights are prepared once, when the plan is compiled.
"""
from __future__ import annotations

import numpy as np

from ..layers.recurrent import LSTM, SimpleRNN
from ..threads import single_threaded_blas
from . import kernels
from .memory import Fresh
from .split import Part


def packed_order(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For padding masks, the rows sorted by length and how many of them are unmasked at each step.

    mask: (N, T) bool in processing order. Every row must be one run of unmasked steps that starts at
    step 0 (post-padding) or, for all rows, one that ends at the last step (pre-padding, which is
    what ``go_backwards`` makes of post-padding). Then, with rows sorted by decreasing length, the
    rows unmasked at any step are a prefix. Returns ``(order (N,), active (T,))``, or ``None`` for
    any other mask (interior gaps, or both kinds of padding mixed).
    """
    n, t = mask.shape
    lengths = mask.sum(axis=1)
    steps = np.arange(t)
    if np.array_equal(mask, steps[None, :] < lengths[:, None]):
        active = (lengths[:, None] > steps[None, :]).sum(axis=0)
    elif np.array_equal(mask, steps[None, :] >= (t - lengths)[:, None]):
        active = ((t - lengths)[:, None] <= steps[None, :]).sum(axis=0)
    else:
        return None
    return np.argsort(-lengths, kind="stable"), active


def _gates_ifoc(src: np.ndarray, out: np.ndarray, negate_sigmoid_gates: bool = False) -> np.ndarray:
    """Keras' LSTM gate blocks (i, f, c, o) along the last axis of ``src`` -> ``out`` in the order
    (i, f, o, c): the three sigmoid gates side by side. Block copies (a column permutation: exact),
    optionally negating the sigmoid gates (an exact sign flip)."""
    u = src.shape[-1] // 4
    for s, d in ((src[..., :2 * u], out[..., :2 * u]), (src[..., 3 * u:], out[..., 2 * u:3 * u])):  # i, f; o
        if negate_sigmoid_gates:
            np.negative(s, out=d)
        else:
            d[...] = s
    out[..., 3 * u:] = src[..., 2 * u:3 * u]  # c
    return out



def fast_gates(layer) -> bool:
    """An LSTM with Keras' default activations, the only one whose gates the fast steps compute."""
    return (layer.recurrent_activation, layer.activation) == ("sigmoid", "tanh")


def plannable(layer) -> bool:
    """A recurrent layer whose inference loop this module runs (else the layer's own forward)."""
    return type(layer) is SimpleRNN or (type(layer) is LSTM and fast_gates(layer))


class RecurrentStep:
    """One SimpleRNN or LSTM (``plannable``), its weights in the column order ``step_into`` expects."""

    def __init__(self, layer, key=None):
        self.layer, self.key = layer, key if key is not None else id(self)
        self.lstm = type(layer) is LSTM
        ws = [layer.weights["kernel"], layer.weights["recurrent_kernel"], layer.weights.get("bias")]
        if self.lstm:
            ws = [None if w is None else _gates_ifoc(w, np.empty_like(w)) for w in ws]
        self.kernel, self.recurrent_kernel, self.bias = ws

    def __call__(self, x, mask=None, part: Part | None = None):
        with single_threaded_blas():  # the input projection too: woken BLAS threads cost more than they share
            return self._run(x, mask, part)

    def _run(self, x, mask, part):
        layer = self.layer
        arena = (part or Part(Fresh())).arena
        x = np.asarray(x, layer.dtype)
        n, t, _ = x.shape
        if layer.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        if mask is None:
            order, active = None, np.full(t, n)
        else:
            packing = packed_order(np.asarray(mask, bool))
            if packing is None:  # interior gaps: the layer's own masked loop
                return layer.forward(x[:, ::-1] if layer.go_backwards else x, mask[:, ::-1] if layer.go_backwards else mask)
            order, active = packing
        u, g = layer.units, layer.gates * layer.units
        xs = x if order is None else np.take(x, order, axis=0)
        xw = arena.get((self.key, "xw"), (n, t, g), layer.dtype)
        np.matmul(xs, self.kernel, out=xw)  # (N, T, gates*units): all time steps at once
        if self.bias is not None:
            xw += self.bias
        h = arena.zeros((self.key, "h"), (n, u), layer.dtype)  # the output is h; a masked row keeps it
        c = arena.zeros((self.key, "c"), (n, u), layer.dtype) if self.lstm else None
        z = arena.get((self.key, "z"), (n, g), layer.dtype)
        outputs = arena.zeros((self.key, "seq"), (n, t, u), layer.dtype) if layer.return_sequences else None
        step = self._lstm_step if self.lstm else self._rnn_step
        for i, k in enumerate(active.tolist()):  # (k, units) @ (units, gates*units) per step
            if k:
                step(xw[:k, i], h[:k], None if c is None else c[:k], z[:k])
            if outputs is not None:
                if layer.zero_output_for_mask:
                    outputs[:k, i] = h[:k]
                else:
                    outputs[:, i] = h
        result = outputs if layer.return_sequences else h
        if order is None:
            return result
        inverse = np.empty_like(order)
        inverse[order] = np.arange(n)
        return np.take(result, inverse, axis=0)

    def _rnn_step(self, xw_t, h, _c, z):
        np.matmul(h, self.recurrent_kernel, out=z)
        z += xw_t
        if self.layer.activation == "tanh":
            np.tanh(z, out=h)
        else:
            h[...] = self.layer.act(z)

    def _lstm_step(self, xw_t, h, c, z):
        u = self.layer.units
        np.matmul(h, self.recurrent_kernel, out=z)
        z += xw_t
        half = z.dtype.type(0.5)
        gates = z[:, :3 * u]  # i, f, o: sigmoid as activations.sigmoid computes it
        gates *= half
        np.tanh(gates, out=gates)
        gates += 1
        gates *= half
        i, f, o, g = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
        np.tanh(g, out=g)
        c *= f
        g *= i
        c += g
        np.tanh(c, out=h)
        h *= o


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



#: Largest projection table ``BidirectionalStep.fold_embedding`` makes (2 x vocabulary x gates x units floats).
TABLE_MAX_BYTES = 64 * 1024 * 1024


def foldable(embedding, step: "BidirectionalStep") -> bool:
    """The Embedding's vectors are the step's inputs (same width) and the table is not too big."""
    e = embedding.weights.get("embeddings")
    return (e is not None and e.shape[1] == step.kernel.shape[1] and e.dtype == step.kernel.dtype
            and 2 * e.shape[0] * step.kernel.shape[2] * e.dtype.itemsize <= TABLE_MAX_BYTES)


def stackable(bidirectional) -> bool:
    """Two plannable cells of one type, units, activation and dtype, in the usual directions."""
    fw, bw = bidirectional.forward_layer, bidirectional.backward_layer
    return (plannable(fw) and type(fw) is type(bw) and plannable(bw) and not fw.go_backwards and bw.go_backwards
            and fw.units == bw.units and fw.activation == bw.activation and fw.dtype == bw.dtype)


class BidirectionalStep:
    """Both directions of a ``stackable`` Bidirectional in one time loop, merged.

    A masked step keeps the state, so a direction's state after m steps is the recurrence over the first
    m unmasked inputs of its row, forwards for the forward layer and backwards for the backward one. Step j
    therefore feeds the forward layer each row's j-th unmasked input and the backward layer its j-th from
    the end; with rows sorted by decreasing length, the rows still running at step j are a prefix for both,
    so each step is one batched product. The input projections cover the unmasked steps only. Every step's
    h is kept, and the outputs are gathered from it at the end. The LSTM's sigmoid gates' columns are
    negated (exact): ``sigmoid(x) = 1 / (1 + exp(-x))`` becomes a division by ``1 + exp(z)``, two passes
    and an ``exp``, faster in NumPy than the ``tanh`` form (``exp`` -> inf gives exactly 0).
    """

    def __init__(self, layer, key=None, pooling=None):
        self.layer, self.key = layer, key if key is not None else id(self)
        fw, bw = layer.forward_layer, layer.backward_layer
        if pooling is not None and not (layer.return_sequences and layer.merge_mode == "concat"):
            raise ValueError(f"Bidirectional {layer.name!r}: the average over time needs return_sequences and "
                             f"merge_mode 'concat', received {layer.return_sequences} and {layer.merge_mode!r}")
        #: A GlobalAveragePooling1D after it, folded in: (N, 2u) means over the unmasked steps (``_average``; its
        #: own ``forward`` on the path for masks with gaps).
        self.pooling, self.average = pooling, pooling is not None
        self.lstm = type(fw) is LSTM
        d_in = fw.weights["kernel"].shape[0]
        u, g, dt = fw.units, fw.gates * fw.units, fw.dtype
        self.kernel, self.recurrent_kernel = np.empty((2, d_in, g), dt), np.empty((2, u, g), dt)
        self.bias = np.zeros((2, 1, g), dt)
        for d, sub in enumerate((fw, bw)):
            for dst, src in ((self.kernel[d], sub.weights["kernel"]), (self.recurrent_kernel[d], sub.weights["recurrent_kernel"]),
                             (self.bias[d, 0], sub.weights.get("bias"))):
                if src is None:
                    continue
                if self.lstm:
                    _gates_ifoc(src, dst, negate_sigmoid_gates=True)
                else:
                    dst[...] = src
        # The gate step compiled (kernels.lstm_gates: one C call instead of 9 NumPy passes), when built.
        self.compiled_gates = (self.lstm and kernels.variant is not None and fast_gates(fw)
                               and np.dtype(dt) == np.float32)
        self.embedding, self.table = None, None

    def fold_embedding(self, embedding, between: list) -> None:
        """Take token ids: the Embedding before it (through ``between``, layers that are the identity at
        inference) is folded into the input projection, ``table[d] = embeddings @ kernel[d] + bias[d]`` (2, V, g),
        computed once in float64, so a step's projected inputs are rows gathered from it (no embedding
        gather, no product over N * T rows)."""
        e = embedding.weights["embeddings"].astype(np.float64)
        table = np.einsum("vi,dig->dvg", e, self.kernel.astype(np.float64)) + self.bias.astype(np.float64)
        self.table = np.ascontiguousarray(table, self.kernel.dtype)
        self.embedding, self.between = embedding, between

    def mask_of_ids(self, ids: np.ndarray, mask):
        """The mask the Bidirectional receives: the Embedding's, passed on by the layers between."""
        mask = self.embedding.compute_mask(ids, mask)
        for layer in self.between:
            mask = layer.compute_mask(ids, mask)
        return mask

    def __call__(self, x, mask=None, part: Part | None = None):
        layer = self.layer
        fw = layer.forward_layer
        if self.table is not None:  # token ids (N, T), checked as the Embedding checks them
            x = self.embedding.check_ids(x)
            mask = self.mask_of_ids(x, mask)
            n, t = x.shape
        else:
            x = np.asarray(x, fw.dtype)
            n, t, _ = x.shape  # (N, T, features)
        mask = np.ones((n, t), bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (n, t):
            raise ValueError(f"Bidirectional {layer.name!r} expected a mask of shape {(n, t)} for input of shape "
                             f"{x.shape}, received {mask.shape}")
        if packed_order(mask) is None:  # interior gaps: the two layers' own masked loops
            if self.table is not None:
                x = self.embedding.forward(x)
            y = layer.forward(x, mask)
            return self.pooling.forward(y, mask) if self.average else y
        # One BLAS thread for all of it (the projection too), and exp -> inf is part of the LSTM's arithmetic.
        with single_threaded_blas(), np.errstate(over="ignore"):
            return self._run(x, mask, part)

    def _run(self, x, mask, part):
        layer, fw = self.layer, self.layer.forward_layer
        n, t = x.shape[:2]
        arena = (part or Part(Fresh())).arena
        s = _Schedule(mask)
        u, g, dt = fw.units, fw.gates * fw.units, fw.dtype
        xw = arena.get((self.key, "xw"), (2, s.total, g), dt)  # (2, total, g): each step's projected inputs
        if self.table is not None:
            ids = x.reshape(n * t)
            for d in range(2):
                np.take(self.table[d], np.take(ids, s.inputs[d]), axis=0, out=xw[d])
        else:
            # Gathers by np.take: it copies whole rows, several times faster here than fancy indexing.
            d_in = x.shape[2]
            inputs = np.take(x.reshape(n * t, d_in), s.inputs, axis=0,
                             out=arena.get((self.key, "inputs"), (2, s.total, d_in), dt))
            np.matmul(inputs, self.kernel, out=xw)
            xw += self.bias
        h = arena.get((self.key, "h"), (2, n + s.total, u), dt)  # h[:, start[m] + r]: sorted row r after m steps
        h[:, :n] = 0
        c = arena.zeros((self.key, "c"), (2, n, u), dt) if self.lstm else None
        z = arena.get((self.key, "z"), (2, n, g), dt)
        step, start = (self._lstm_step if self.lstm else self._rnn_step), s.start.tolist()
        for j, k in enumerate(s.active.tolist()):
            prev, new = start[j], start[j + 1]
            step(xw[:, new - n:new - n + k], h[:, prev:prev + k], h[:, new:new + k],
                 None if c is None else c[:, :k], z[:, :k])
        if self.average:
            return self._average(h, s, arena)
        where = s.outputs(layer.return_sequences, fw.zero_output_for_mask)
        y = np.take(h.reshape(-1, u), where, axis=0)  # (N, [T,] 2, units)
        if layer.merge_mode == "concat":  # the gather already placed the directions side by side
            return y.reshape(*y.shape[:-2], 2 * u)
        return layer._merge(y[..., 0, :], y[..., 1, :])

    def _average(self, h: np.ndarray, s: _Schedule, arena) -> np.ndarray:
        """GlobalAveragePooling1D of the concatenated sequence output, without gathering it: over a row's
        unmasked steps, each direction outputs its h after 1, 2, ..., len steps (in time order forwards,
        reversed backwards), so the sum over time is the sum of those h, and the mean that over len
        (masked steps are left out, as the pooling's mask does; a row with none is 0 / 0, as there)."""
        n, u = len(s.lengths), h.shape[-1]
        steps = len(s.active)
        if steps and int(s.active[-1]) == n:  # every row runs every step: one reduction
            acc = h[:, n:n + steps * n].reshape(2, steps, n, u).sum(axis=1)
        else:
            acc = arena.zeros((self.key, "average"), (2, n, u), h.dtype)
            for j, k in enumerate(s.active.tolist()):
                acc[:, :k] += h[:, s.start[j + 1]:s.start[j + 1] + k]
        y = acc[:, s.rank].transpose(1, 0, 2).reshape(n, 2 * u)  # original row order, [forward | backward]
        return y / s.lengths.astype(h.dtype)[:, None]

    def _rnn_step(self, xw_t, h_prev, h, _c, z):
        # Not the product straight into h: h_prev may be another part of h's buffer, and NumPy then
        # copies operands it cannot prove disjoint.
        np.matmul(h_prev, self.recurrent_kernel, out=z)
        np.add(z, xw_t, out=h)
        if self.layer.forward_layer.activation == "tanh":
            np.tanh(h, out=h)
        else:
            h[...] = self.layer.forward_layer.act(h)

    def _lstm_step(self, xw_t, h_prev, h, c, z):
        u = self.layer.forward_layer.units
        np.matmul(h_prev, self.recurrent_kernel, out=z)
        if self.compiled_gates:
            kernels.lstm_gates(z, xw_t, c, h)
            return
        z += xw_t
        gates = z[..., :3 * u]  # -z of i, f, o
        np.exp(gates, out=gates)
        gates += 1  # 1 / sigmoid: each product by a gate below is a division by this
        i, f, o, g = z[..., :u], z[..., u:2 * u], z[..., 2 * u:3 * u], z[..., 3 * u:]
        np.tanh(g, out=g)
        c /= f
        g /= i
        c += g
        np.tanh(c, out=h)
        h /= o
