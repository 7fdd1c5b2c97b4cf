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
               "go_backwards": None, "return_state": None, "stateful": (False,),
               "dropout": None, "recurrent_dropout": None, "time_major": (False,),
               "zero_output_for_mask": None}


class _Recurrent(Layer):
    supports_masking = True
    options = RNN_OPTIONS
    call_args = ("initial_state",)  # a functional graph's call arguments after the sequence
    gates = 1  # column blocks in kernel/recurrent_kernel/bias

    def __init__(self, units: int, activation="tanh", use_bias: bool = True, return_sequences: bool = False,
                 go_backwards: bool = False, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 zero_output_for_mask: bool = False, return_state: bool = False, name: str | None = None, **_ignored):
        super().__init__(name)
        self.units = check_positive_int(units, "units")
        self.return_state = bool(return_state)  # forward returns [output, *final state]
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
                "recurrent_dropout": self.recurrent_dropout, "zero_output_for_mask": self.zero_output_for_mask,
                "return_state": self.return_state}

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

    def state_shapes(self, input_shape) -> list[tuple]:
        """Shapes of the states ``return_state`` adds to the outputs: (N, units) each."""
        return [(input_shape[0], self.units) for _ in self.initial_state(0)]

    def input_bias(self) -> np.ndarray:
        """The bias added to the input projection of every step (the GRU's reset_after has two biases)."""
        return self.weights["bias"]

    def step(self, xw_t: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple, object]:
        """One time step: projected input (N, gates*units) and state -> (output (N, units), new state,
        what backward needs of this step)."""
        raise NotImplementedError

    def step_backward(self, dh: np.ndarray, dstate: tuple, saved, state: tuple) -> tuple[np.ndarray, tuple]:
        """Gradients w.r.t. this step's new output ``dh`` and new state -> (d xw_t, d previous state),
        accumulating ``grads["recurrent_kernel"]``."""
        raise NotImplementedError

    def forward(self, x, mask=None, training=False, initial_state=None):
        """x: (N, T, D) -> (N, T, units) or (N, units); with ``return_state`` a list [output, *final
        state]. ``initial_state``: the state to start from (a list of (N, units) arrays), else zeros."""
        with single_threaded_blas():
            return self._forward(x, mask, training, initial_state)

    def _forward(self, x, mask, training, initial_state=None):
        x = np.asarray(x, self.dtype)
        n, t, _ = x.shape
        if self.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        xw = x @ self.weights["kernel"]  # (N, T, gates*units): all time steps at once
        if self.use_bias:
            xw += self.input_bias()
        state = self.initial_state(n) if initial_state is None else self._check_state(initial_state, n)
        output = np.zeros((n, self.units), self.dtype)
        outputs = np.empty((n, t, self.units), self.dtype) if self.return_sequences else None
        states, saved_steps = [state], []
        for i in range(t):
            new_output, new_state, saved = self.step(xw[:, i], state)
            if mask is None:
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
        result = outputs if self.return_sequences else output
        return [result, *state] if self.return_state else result

    def _check_state(self, initial_state, n: int) -> tuple[np.ndarray, ...]:
        states = [initial_state] if isinstance(initial_state, np.ndarray) else list(initial_state)
        expected = len(self.initial_state(0))
        if len(states) != expected:
            raise ValueError(f"{type(self).__name__} {self.name!r} expected {expected} initial state arrays, "
                             f"received {len(states)}")
        for s in states:
            if np.shape(s) != (n, self.units):
                raise ValueError(f"{type(self).__name__} {self.name!r} expected initial states of shape "
                                 f"{(n, self.units)}, received {np.shape(s)}")
        return tuple(np.asarray(s, self.dtype) for s in states)

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

    def step_backward(self, dh, dstate, saved, state):
        z, h = saved
        dz = activations.backward(self.activation, dh, z, h)
        self.grads["recurrent_kernel"] += state[0].T @ dz
        return dz, (dz @ self.weights["recurrent_kernel"].T,)


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

    def step_backward(self, dh, dstate, saved, state):
        s, (h_prev, c_prev), u = saved, state, self.units
        dc = dstate[0] + activations.backward(self.activation, dh * s.o, s.c, s.act_c)
        rec = lambda d, k, y: activations.backward(self.recurrent_activation, d, s.z[:, k * u:(k + 1) * u], y)
        dz = np.concatenate([rec(dc * s.g, 0, s.i), rec(dc * c_prev, 1, s.f),
                             activations.backward(self.activation, dc * s.i, s.z[:, 2 * u:3 * u], s.g),
                             rec(dh * s.act_c, 3, s.o)], axis=1)
        self.grads["recurrent_kernel"] += h_prev.T @ dz
        return dz, (dz @ self.weights["recurrent_kernel"].T, dc * s.f)
