"""SGD, Adam and RMSprop with Keras 3's constructor arguments, defaults and update equations.

An optimizer is apart from the layers: ``opt.step(params, grads)`` updates a list of float32
arrays in place and keeps one slot per parameter (by position), as Keras keeps one variable per weight.
"""
from __future__ import annotations

import numpy as np


class Optimizer:
    def __init__(self, learning_rate: float):
        if not float(learning_rate) > 0:
            raise ValueError(f"Expected a positive `learning_rate`, received: {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.slots: list[dict[str, np.ndarray]] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if len(params) != len(grads):
            raise ValueError(f"Expected one gradient per parameter ({len(params)}), received {len(grads)}")
        if self.slots is None:
            self.slots = [self.init_slots(p) for p in params]
        elif len(self.slots) != len(params):
            raise ValueError(f"This optimizer was started on {len(self.slots)} parameters, received {len(params)}")
        self.iterations += 1
        for p, g, s in zip(params, grads, self.slots):
            if g.shape != p.shape:
                raise ValueError(f"Gradient of shape {g.shape} for a parameter of shape {p.shape}")
            self.update(p, g.astype(np.float32, copy=False), s)

    def init_slots(self, p: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def update(self, p: np.ndarray, g: np.ndarray, s: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``m = momentum*m - lr*g``; ``w += m`` (nesterov: ``w += momentum*m - lr*g``); no momentum: ``w -= lr*g``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0 <= momentum <= 1:
            raise ValueError(f"Expected `momentum` in [0, 1], received: {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def init_slots(self, p):
        return {"m": np.zeros_like(p)} if self.momentum else {}

    def update(self, p, g, s):
        lr = np.float32(self.learning_rate)
        if not self.momentum:
            p -= lr * g
            return
        m = s["m"]
        m *= np.float32(self.momentum)
        m -= lr * g
        if self.nesterov:
            p += np.float32(self.momentum) * m - lr * g
        else:
            p += m


class Adam(Optimizer):
    """``m += (g-m)(1-β1)``; ``v += (g²-v)(1-β2)``; ``w -= lr·sqrt(1-β2ᵗ)/(1-β1ᵗ) · m/(sqrt(v)+ε)``."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False):
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise ValueError(f"Expected `{name}` in [0, 1), received: {b!r}")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), bool(amsgrad)

    def init_slots(self, p):
        slots = {"m": np.zeros_like(p), "v": np.zeros_like(p)}
        if self.amsgrad:
            slots["v_hat"] = np.zeros_like(p)
        return slots

    def update(self, p, g, s):
        t = self.iterations
        b1, b2 = np.float32(self.beta_1), np.float32(self.beta_2)
        lr_t = np.float32(self.learning_rate) * np.sqrt(1 - b2 ** np.float32(t)) / (1 - b1 ** np.float32(t))
        m, v = s["m"], s["v"]
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        if self.amsgrad:
            np.maximum(s["v_hat"], v, out=s["v_hat"])
            v = s["v_hat"]
        p -= lr_t * m / (np.sqrt(v) + np.float32(self.epsilon))


class RMSprop(Optimizer):
    """``v = ρv + (1-ρ)g²``; ``w -= lr·g/sqrt(v + ε)`` (centered: ``v - ḡ²``; momentum: via ``m``)."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False):
        super().__init__(learning_rate)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def init_slots(self, p):
        slots = {"v": np.zeros_like(p)}
        if self.momentum:
            slots["m"] = np.zeros_like(p)
        if self.centered:
            slots["g_avg"] = np.zeros_like(p)
        return slots

    def update(self, p, g, s):
        rho, lr = np.float32(self.rho), np.float32(self.learning_rate)
        v = s["v"]
        v[...] = rho * v + (1 - rho) * g * g
        if self.centered:
            s["g_avg"][...] = rho * s["g_avg"] + (1 - rho) * g
            denominator = v - s["g_avg"] ** 2 + np.float32(self.epsilon)
        else:
            denominator = v + np.float32(self.epsilon)
        increment = lr * g / np.sqrt(denominator)
        if self.momentum:
            s["m"][...] = np.float32(self.momentum) * s["m"] + increment
            p -= s["m"]
        else:
            p -= increment


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(spec) -> Optimizer:
    """An optimizer object, or a fresh one from its Keras name ('adam', 'sgd', 'rmsprop')."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in OPTIMIZERS:
        return OPTIMIZERS[spec.lower()]()
    raise ValueError(f"Expected an optimizer or one of {sorted(OPTIMIZERS)}, received {spec!r}")
