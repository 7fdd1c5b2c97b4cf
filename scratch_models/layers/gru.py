"""GRU over (N, T, D) sequences, as Keras' GRU: gate column blocks in the order z (update), r (reset),
h (candidate); masking, ``go_backwards``, ``return_state`` and ``initial_state`` as the other
recurrent layers (``recurrent._Recurrent`` runs the time loop)."""
from __future__ import annotations

import numpy as np

from .. import activations
from .base import Cache
from .recurrent import RNN_OPTIONS, _Recurrent


class GRU(_Recurrent):
    """``z = rec_act(x W_z + h U_z)``, ``r = rec_act(x W_r + h U_r)``, ``h' = z h + (1 - z) act(x W_h + ...)``.

    ``reset_after=True`` (Keras' default): candidate ``act(x W_h + b_h + r * (h U_h + b'_h))``, two bias
    rows; ``bias`` (2, 3u): row 0 added to the input projection, row 1 to the recurrent one.
    ``reset_after=False``: candidate ``act(x W_h + b_h + (r * h) U_h)``, ``bias`` (3u,).
    Weights: ``kernel`` (D, 3u), ``recurrent_kernel`` (u, 3u), ``bias``.
    """

    gates = 3
    options = {**RNN_OPTIONS, "recurrent_activation": None, "reset_after": None, "use_cudnn": None}

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid", reset_after: bool = True,
                 **kwargs):
        kwargs.pop("use_cudnn", None)  # a device choice, the same arithmetic
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = activations.activation_name(recurrent_activation)
        self.rec_act = activations.get(self.recurrent_activation)
        self.reset_after = bool(reset_after)

    def get_config(self) -> dict:
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "reset_after": self.reset_after}

    def weight_shapes(self, input_shape):
        shapes = super().weight_shapes(input_shape)
        if self.use_bias and self.reset_after:
            shapes["bias"] = (2, 3 * self.units)
        return shapes

    def input_bias(self):
        return self.weights["bias"][0] if self.reset_after else self.weights["bias"]

    def step(self, xw_t, state):
        """xw_t: (N, 3u) the input projection with its bias; state (h,) -> (h', (h',), cache)."""
        h, u = state[0], self.units
        rk = self.weights["recurrent_kernel"]
        if self.reset_after:
            inner = h @ rk
            if self.use_bias:
                inner = inner + self.weights["bias"][1]
            a_z, a_r = xw_t[:, :u] + inner[:, :u], xw_t[:, u:2 * u] + inner[:, u:2 * u]
            z, r = self.rec_act(a_z), self.rec_act(a_r)
            a_h = xw_t[:, 2 * u:] + r * inner[:, 2 * u:]
            saved = dict(inner_h=inner[:, 2 * u:])
        else:
            inner = h @ rk[:, :2 * u]
            a_z, a_r = xw_t[:, :u] + inner[:, :u], xw_t[:, u:2 * u] + inner[:, u:]
            z, r = self.rec_act(a_z), self.rec_act(a_r)
            rh = r * h
            a_h = xw_t[:, 2 * u:] + rh @ rk[:, 2 * u:]
            saved = dict(rh=rh)
        hh = self.act(a_h)
        h_new = z * h + (1 - z) * hh
        return h_new, (h_new,), Cache(a_z=a_z, a_r=a_r, a_h=a_h, z=z, r=r, hh=hh, **saved)

    def step_backward(self, dh, dstate, saved, state):
        s, h, u = saved, state[0], self.units
        rk = self.weights["recurrent_kernel"]
        dz = dh * (h - s.hh)
        da_h = activations.backward(self.activation, dh * (1 - s.z), s.a_h, s.hh)
        dh_prev = dh * s.z
        if self.reset_after:
            dr = da_h * s.inner_h
            da_z = activations.backward(self.recurrent_activation, dz, s.a_z, s.z)
            da_r = activations.backward(self.recurrent_activation, dr, s.a_r, s.r)
            dinner = np.concatenate([da_z, da_r, da_h * s.r], axis=1)
            self.grads["recurrent_kernel"] += h.T @ dinner
            if self.use_bias:
                self._d_recurrent_bias += dinner.sum(axis=0)
            dh_prev = dh_prev + dinner @ rk.T
        else:
            drh = da_h @ rk[:, 2 * u:].T
            dr = drh * h
            da_z = activations.backward(self.recurrent_activation, dz, s.a_z, s.z)
            da_r = activations.backward(self.recurrent_activation, dr, s.a_r, s.r)
            dzr = np.concatenate([da_z, da_r], axis=1)
            self.grads["recurrent_kernel"][:, :2 * u] += h.T @ dzr
            self.grads["recurrent_kernel"][:, 2 * u:] += s.rh.T @ da_h
            dh_prev = dh_prev + drh * s.r + dzr @ rk[:, :2 * u].T
        return np.concatenate([da_z, da_r, da_h], axis=1), (dh_prev,)

    def _backward(self, dout):
        self._d_recurrent_bias = np.zeros(3 * self.units, self.dtype)
        dx = super()._backward(dout)
        if self.use_bias and self.reset_after:  # the loop summed the input bias' gradient into grads["bias"]
            self.grads["bias"] = np.stack([self.grads["bias"], self._d_recurrent_bias])
        return dx
