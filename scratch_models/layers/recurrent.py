"""SimpleRNN and LSTM over (N, T, D) sequences, with masking and ``go_backwards`` as Keras.

The input projection ``x @ kernel + bias`` is one matrix product for all time steps; only the
recurrence loops over time. At a masked step the state carries over and the output repeats the
previous output (zeros before the first unmasked step), or is zero when ``zero_output_for_mask``
(what ``Bidirectional`` sets for ``return_sequences``).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from ..threads import single_threaded_blas
from .base import Cache, Layer, check_positive_int

RNN_OPTIONS = {"units": None, "activation": None, "use_bias": None, "return_sequences": None,
               "go_backwards": None, "return_state": (False,), "stateful": (False,),
               "dropout": None, "recurrent_dropout": None, "time_major": (False,),
               "zero_output_for_mask": None}


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


class _Recurrent(Layer):
    supports_masking = True
    options = RNN_OPTIONS
    gates = 1  # column blocks in kernel/recurrent_kernel/bias

    def __init__(self, units: int, activation="tanh", use_bias: bool = True, return_sequences: bool = False,
                 go_backwards: bool = False, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 zero_output_for_mask: bool = False, name: str | None = None, **_ignored):
        super().__init__(name)
        self.units = check_positive_int(units, "units")
        self.activation = activations.activation_name(activation)
        self.act = activations.get(self.activation)
        self.use_bias = bool(use_bias)
        self.return_sequences = bool(return_sequences)
        self.go_backwards = bool(go_backwards)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.zero_output_for_mask = bool(zero_output_for_mask)

    def get_config(self) -> dict:
        return {"name": self.name, "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                "go_backwards": self.go_backwards, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "zero_output_for_mask": self.zero_output_for_mask}

    def weight_shapes(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expected input of shape (N, T, D), received {input_shape}")
        g = self.gates * self.units
        shapes = {"kernel": (input_shape[-1], g), "recurrent_kernel": (self.units, g)}
        if self.use_bias:
            shapes["bias"] = (g,)
        return shapes

    def compute_output_shape(self, input_shape):
        n, t, _ = input_shape
        return (n, t, self.units) if self.return_sequences else (n, self.units)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def initial_state(self, n: int) -> tuple[np.ndarray, ...]:
        return (np.zeros((n, self.units), self.dtype),)

    def step(self, xw_t: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple, object]:
        """One time step: projected input (N, gates*units) and state -> (output (N, units), new state,
        what backward needs of this step)."""
        raise NotImplementedError

    def inference_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(kernel, recurrent_kernel, bias) in the column order ``step_into`` expects: the layer's own
        (the LSTM reorders its gate blocks)."""
        return self.weights["kernel"], self.weights["recurrent_kernel"], self.weights.get("bias")

    def step_into(self, xw_t: np.ndarray, state: tuple, z: np.ndarray, recurrent_kernel: np.ndarray) -> None:
        """Inference step in place: overwrite ``state`` (views of the unmasked rows) with the new
        state, using ``z`` (N, gates*units) as scratch space; ``xw_t`` and ``recurrent_kernel`` in the
        column order of ``inference_weights``. The same numbers as ``step``."""
        _, new_state, _ = self.step(xw_t, state)
        for old, new in zip(state, new_state):
            old[...] = new

    # -- stacked inference: the fused Bidirectional runs its two layers as one stack ---------------
    def stacks_with(self, other: "_Recurrent") -> bool:
        """True when ``step_stacked`` can run this layer and ``other`` as one stack: the same cell
        (one that has ``step_stacked``), units, activation and dtype."""
        return (type(other) is type(self) and type(self).step_stacked is not _Recurrent.step_stacked
                and other.units == self.units and other.activation == self.activation and other.dtype == self.dtype)

    def stacked_weights_into(self, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray) -> None:
        """Write this layer's (kernel, recurrent_kernel, bias) as ``step_stacked`` takes them into its
        slices of the stacked arrays (zeros for no bias). Rebuilt at every call, never cached: the
        optimizer updates weights in place. By default, the layer's own."""
        kernel[...] = self.weights["kernel"]
        recurrent_kernel[...] = self.weights["recurrent_kernel"]
        bias[...] = self.weights.get("bias", 0)

    def step_stacked(self, xw_t: np.ndarray, h_prev: np.ndarray, state: tuple, z: np.ndarray,
                     recurrent_kernel: np.ndarray) -> None:
        """Inference step of a stack of L layers of this cell, in place: ``h_prev`` (L, k, units) and the
        carried state (``state[1:]``) -> new state in ``state`` (L, k, units) views, with ``z`` (L, k,
        gates*units) as scratch; ``xw_t`` (L, k, gates*units) and ``recurrent_kernel`` (L, units,
        gates*units) from ``stacked_weights_into``. One batched product per step for all L layers. Call it
        under ``np.errstate(over="ignore")``: an overflow to inf may be part of the arithmetic."""
        raise NotImplementedError

    def step_backward(self, dh: np.ndarray, dstate: tuple, saved, state: tuple) -> tuple[np.ndarray, tuple]:
        """Gradients w.r.t. this step's new output ``dh`` and new state -> (d xw_t, d previous state),
        accumulating ``grads["recurrent_kernel"]``."""
        raise NotImplementedError

    def forward(self, x, mask=None, training=False):
        with single_threaded_blas():
            return self._forward(x, mask, training)

    def _forward(self, x, mask, training):
        x = np.asarray(x, self.dtype)
        n, t, _ = x.shape
        if self.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        if mask is not None and not training:
            packing = packed_order(mask)
            if packing is not None:
                return self._forward_packed(x, *packing)
        xw = x @ self.weights["kernel"]  # (N, T, gates*units): all time steps at once
        if self.use_bias:
            xw += self.weights["bias"]
        state = self.initial_state(n)
        output = np.zeros((n, self.units), self.dtype)
        outputs = np.empty((n, t, self.units), self.dtype) if self.return_sequences else None
        states, saved_steps = [state], []
        # Inference shortcut, exact: a step masked for every row changes nothing (the state carries over),
        # and a step unmasked for every row needs no select. Padding makes many such steps.
        any_kept = mask.any(axis=0) if mask is not None and not training else None
        all_kept = mask.all(axis=0) if any_kept is not None else None
        for i in range(t):
            if any_kept is not None and not any_kept[i]:
                if outputs is not None:
                    outputs[:, i] = 0 if self.zero_output_for_mask else output
                continue
            new_output, new_state, saved = self.step(xw[:, i], state)
            if mask is None or (all_kept is not None and all_kept[i]):
                output, state = new_output, new_state
                step_output = output
            else:
                keep = mask[:, i, None]
                state = tuple(np.where(keep, new, old) for new, old in zip(new_state, state))
                output = np.where(keep, new_output, output)
                step_output = np.where(keep, new_output, 0).astype(self.dtype) if self.zero_output_for_mask else output
            if outputs is not None:
                outputs[:, i] = step_output
            if training:
                states.append(state)
                saved_steps.append(saved)
        if training:
            self.cache = Cache(x=x, mask=mask, states=states, saved=saved_steps)
        return outputs if self.return_sequences else output

    def _forward_packed(self, x, order, active):
        """Inference over length-sorted rows: at step i only the first ``active[i]`` rows are
        unmasked, so the step computes just those and the others keep their state and output, as
        masking prescribes. Same numbers as the masked loop, with no selects and no work on padding."""
        n, t, _ = x.shape
        kernel, recurrent_kernel, bias = self.inference_weights()
        xw = x[order] @ kernel  # (N, T, gates*units), rows sorted by length
        if bias is not None:
            xw += bias
        state = self.initial_state(n)
        output = state[0]  # the output is h; a masked row keeps both (zeros before its first step)
        z = np.empty((n, self.gates * self.units), self.dtype)
        outputs = np.zeros((n, t, self.units), self.dtype) if self.return_sequences else None
        for i in range(t):
            k = int(active[i])
            if k:
                self.step_into(xw[:k, i], tuple(s[:k] for s in state), z[:k], recurrent_kernel)
            if outputs is not None:
                if self.zero_output_for_mask:
                    outputs[:k, i] = output[:k]
                else:
                    outputs[:, i] = output
        inverse = np.empty_like(order)
        inverse[order] = np.arange(n)
        return outputs[inverse] if self.return_sequences else output[inverse]

    def backward(self, dout):
        """Backpropagation through time. dout: (N, T, units) or (N, units) -> dx (N, T, D)."""
        with single_threaded_blas():
            return self._backward(dout)

    def _backward(self, dout):
        c = self.cache
        n, t, _ = c.x.shape
        self.grads = {"kernel": None, "recurrent_kernel": np.zeros_like(self.weights["recurrent_kernel"])}
        dxw = np.empty((n, t, self.gates * self.units), self.dtype)
        dstate = tuple(np.zeros_like(s) for s in c.states[0])
        for i in reversed(range(t)):
            d_out = dout[:, i] if self.return_sequences else (dout if i == t - 1 else 0)
            keep = None if c.mask is None else c.mask[:, i, None]
            # The output at step i is the new state h (or zeros at a masked step with zero_output_for_mask).
            if keep is None:
                dh_new, dstate_new, dcarry = dstate[0] + d_out, dstate[1:], None
            else:
                d_h_total = dstate[0] + (0 if self.zero_output_for_mask else d_out)
                dh_new = keep * (d_h_total + (d_out if self.zero_output_for_mask else 0))
                dstate_new = tuple(keep * d for d in dstate[1:])
                dcarry = tuple((~keep) * d for d in (d_h_total, *dstate[1:]))
            dxw[:, i], dprev = self.step_backward(dh_new, dstate_new, c.saved[i], c.states[i])
            dstate = dprev if dcarry is None else tuple(a + b for a, b in zip(dprev, dcarry))
        flat_x = c.x.reshape(-1, c.x.shape[-1])
        flat_d = dxw.reshape(-1, dxw.shape[-1])
        self.grads["kernel"] = flat_x.T @ flat_d
        if self.use_bias:
            self.grads["bias"] = flat_d.sum(axis=0)
        self.grads = {k: self.grads[k] for k in self.weights}  # Keras' order
        dx = dxw @ self.weights["kernel"].T
        return dx[:, ::-1] if self.go_backwards else dx


class SimpleRNN(_Recurrent):
    """``h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``; output = h.

    Weights: ``kernel`` (D, units), ``recurrent_kernel`` (units, units), ``bias`` (units,).
    """

    gates = 1

    def step(self, xw_t, state):
        z = xw_t + state[0] @ self.weights["recurrent_kernel"]
        h = self.act(z)
        return h, (h,), (z, h)

    def step_into(self, xw_t, state, z, recurrent_kernel):
        h = state[0]
        np.matmul(h, recurrent_kernel, out=z)
        z += xw_t
        if self.activation == "tanh":
            np.tanh(z, out=h)
        else:
            h[...] = self.act(z)

    def step_stacked(self, xw_t, h_prev, state, z, recurrent_kernel):
        h = state[0]
        # Not the product straight into h: h_prev may be another part of h's buffer, and NumPy then
        # copies operands it cannot prove disjoint (2x slower at 128 rows).
        np.matmul(h_prev, recurrent_kernel, out=z)
        np.add(z, xw_t, out=h)
        if self.activation == "tanh":
            np.tanh(h, out=h)
        else:
            h[...] = self.act(h)

    def step_backward(self, dh, dstate, saved, state):
        z, h = saved
        dz = activations.backward(self.activation, dh, z, h)
        self.grads["recurrent_kernel"] += state[0].T @ dz
        return dz, (dz @ self.weights["recurrent_kernel"].T,)


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


class LSTM(_Recurrent):
    """Long short-term memory; gate column blocks in Keras' order i, f, c, o.

    ``z = x_t @ kernel + h @ recurrent_kernel + bias``; ``i, f, o = rec_act(z_i, z_f, z_o)``;
    ``c = f * c + i * act(z_c)``; ``h = o * act(c)``. Weights: ``kernel`` (D, 4u),
    ``recurrent_kernel`` (u, 4u), ``bias`` (4u,).
    """

    gates = 4
    options = {**RNN_OPTIONS, "recurrent_activation": None, "unit_forget_bias": None}

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.activation_name(recurrent_activation)
        self.rec_act = activations.get(self.recurrent_activation)

    def get_config(self) -> dict:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation}

    def initial_state(self, n):
        return (np.zeros((n, self.units), self.dtype), np.zeros((n, self.units), self.dtype))

    def step(self, xw_t, state):
        h, c_prev = state
        u = self.units
        z = xw_t + h @ self.weights["recurrent_kernel"]
        i = self.rec_act(z[:, :u])
        f = self.rec_act(z[:, u:2 * u])
        g = self.act(z[:, 2 * u:3 * u])
        c = f * c_prev + i * g
        o = self.rec_act(z[:, 3 * u:])
        act_c = self.act(c)
        h = o * act_c
        return h, (h, c), Cache(z=z, i=i, f=f, g=g, o=o, c=c, act_c=act_c)

    def _fast_gates(self) -> bool:
        return (self.recurrent_activation, self.activation) == ("sigmoid", "tanh")

    def inference_weights(self):
        """With the default activations, gate blocks reordered i, f, o, c: the three sigmoid gates are then
        one contiguous block, one sigmoid per step instead of three. A column permutation: exact."""
        if not self._fast_gates():
            return super().inference_weights()
        out = []
        for name in ("kernel", "recurrent_kernel", "bias"):
            src = self.weights.get(name)
            out.append(None if src is None else _gates_ifoc(src, np.empty_like(src)))
        return tuple(out)

    def step_into(self, xw_t, state, z, recurrent_kernel):
        if not self._fast_gates():
            return super().step_into(xw_t, state, z, recurrent_kernel)
        h, c = state
        u = self.units
        np.matmul(h, recurrent_kernel, out=z)
        z += xw_t
        half = self.dtype.type(0.5)
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

    def stacks_with(self, other):
        return (super().stacks_with(other) and self._fast_gates() and other._fast_gates())

    def stacked_weights_into(self, kernel, recurrent_kernel, bias):
        """Gate blocks i, f, o, c as ``inference_weights``, the sigmoid gates' columns negated (an exact
        sign flip): ``step_stacked`` then multiplies by ``sigmoid(x) = 1 / (1 + exp(-x))`` as a division
        by ``1 + exp(-x)``, two passes and an ``exp``, which NumPy computes faster than the ``tanh`` of
        ``step_into``'s form (the same values up to float rounding; ``exp`` -> inf gives exactly 0)."""
        own = self.weights
        for dst, src in ((kernel, own["kernel"]), (recurrent_kernel, own["recurrent_kernel"]), (bias, own.get("bias"))):
            if src is None:  # no bias
                dst[...] = 0
            else:
                _gates_ifoc(src, dst, negate_sigmoid_gates=True)

    def step_stacked(self, xw_t, h_prev, state, z, recurrent_kernel):
        h, c = state
        u = self.units
        np.matmul(h_prev, recurrent_kernel, out=z)
        z += xw_t
        gates = z[..., :3 * u]  # -z of i, f, o; exp(-z) = inf for z < -88 (the caller silences that)
        np.exp(gates, out=gates)
        gates += 1  # 1 / sigmoid: each product by a gate below is a division by this
        i, f, o, g = z[..., :u], z[..., u:2 * u], z[..., 2 * u:3 * u], z[..., 3 * u:]
        np.tanh(g, out=g)
        c /= f
        g /= i
        c += g
        np.tanh(c, out=h)
        h /= o

    def step_backward(self, dh, dstate, saved, state):
        s, (h_prev, c_prev), u = saved, state, self.units
        dc = dstate[0] + activations.backward(self.activation, dh * s.o, s.c, s.act_c)
        rec = lambda d, k, y: activations.backward(self.recurrent_activation, d, s.z[:, k * u:(k + 1) * u], y)
        dz = np.concatenate([rec(dc * s.g, 0, s.i), rec(dc * c_prev, 1, s.f),
                             activations.backward(self.activation, dc * s.i, s.z[:, 2 * u:3 * u], s.g),
                             rec(dh * s.act_c, 3, s.o)], axis=1)
        self.grads["recurrent_kernel"] += h_prev.T @ dz
        return dz, (dz @ self.weights["recurrent_kernel"].T, dc * s.f)
