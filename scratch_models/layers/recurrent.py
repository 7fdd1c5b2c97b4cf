"""SimpleRNN and LSTM over (N, T, D) sequences, with masking and ``go_backwards`` as Keras.

The input projection ``x @ kernel + bias`` is one matrix product for all time steps; only the
recurrence loops over time. At a masked step the state carries over and the output repeats the
previous output (zeros before the first unmasked step), or is zero when ``zero_output_for_mask``
(what ``Bidirectional`` sets for ``return_sequences``).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from .base import Layer, check_positive_int

RNN_OPTIONS = {"units": None, "activation": None, "use_bias": None, "return_sequences": None,
               "go_backwards": None, "return_state": (False,), "stateful": (False,),
               "dropout": None, "recurrent_dropout": None, "time_major": (False,),
               "zero_output_for_mask": None}


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
        return (np.zeros((n, self.units), np.float32),)

    def step(self, xw_t: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        """One time step: projected input (N, gates*units) and state -> (output (N, units), new state)."""
        raise NotImplementedError

    def forward(self, x, mask=None, training=False):
        x = np.asarray(x, np.float32)
        n, t, _ = x.shape
        if self.go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        xw = x @ self.weights["kernel"]  # (N, T, gates*units): all time steps at once
        if self.use_bias:
            xw += self.weights["bias"]
        state = self.initial_state(n)
        output = np.zeros((n, self.units), np.float32)
        outputs = np.empty((n, t, self.units), np.float32) if self.return_sequences else None
        for i in range(t):
            new_output, new_state = self.step(xw[:, i], state)
            if mask is None:
                output, state = new_output, new_state
                step_output = output
            else:
                keep = mask[:, i, None]
                state = tuple(np.where(keep, new, old) for new, old in zip(new_state, state))
                if self.zero_output_for_mask:
                    step_output = np.where(keep, new_output, 0).astype(np.float32)
                    output = np.where(keep, new_output, output)
                else:
                    output = np.where(keep, new_output, output)
                    step_output = output
            if outputs is not None:
                outputs[:, i] = step_output
        return outputs if self.return_sequences else output


class SimpleRNN(_Recurrent):
    """``h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``; output = h.

    Weights: ``kernel`` (D, units), ``recurrent_kernel`` (units, units), ``bias`` (units,).
    """

    gates = 1

    def step(self, xw_t, state):
        h = self.act(xw_t + state[0] @ self.weights["recurrent_kernel"])
        return h, (h,)


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
        return (np.zeros((n, self.units), np.float32), np.zeros((n, self.units), np.float32))

    def step(self, xw_t, state):
        h, c = state
        u = self.units
        z = xw_t + h @ self.weights["recurrent_kernel"]
        i = self.rec_act(z[:, :u])
        f = self.rec_act(z[:, u:2 * u])
        c = f * c + i * self.act(z[:, 2 * u:3 * u])
        o = self.rec_act(z[:, 3 * u:])
        h = o * self.act(c)
        return h, (h, c)
