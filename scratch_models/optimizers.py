"""SGD, Adam and RMSprop with Keras 3's constructor arguments, defaults and update equations.

An optimizer is apart from the layers: ``opt.step(params, grads)`` updates a list of float32 (or
float64) arrays in place, computing in each parameter's dtype as Keras does in each variable's, and
keeps one slot per parameter (by position), as Keras keeps one variable per weight.
"""
from __future__ import annotations

import numpy as np


def keras_cast(value: float, dtype) -> np.generic:
    """A Python float as Keras' ``ops.cast(value, variable.dtype)`` makes it on TensorFlow: through a
    float32 tensor (0.999 becomes 0.99900001287 in float64). Keras casts so the learning rate (a
    float32 variable by default), SGD's momentum and Adam's betas; other constants (``1 - beta_1``,
    ``rho``, ``epsilon``) enter its equations as exact Python floats, converted to the variable's dtype."""
    return np.dtype(dtype).type(np.float32(value))


class Optimizer:
    def __init__(self, learning_rate: float):
        if not float(learning_rate) > 0:
            raise ValueError(f"Expected a positive `learning_rate`, received: {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.slots: list[dict[str, np.ndarray]] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], grad_squares: list | None = None) -> None:
        """One update of every parameter. ``grad_squares[i]``, when given and not None, is what stands
        for ``grads[i]**2`` in the second moments (Keras squares an Embedding's sparse gradient
        row by row, see ``Embedding.backward``)."""
        if len(params) != len(grads):
            raise ValueError(f"Expected one gradient per parameter ({len(params)}), received {len(grads)}")
        if self.slots is None:
            self.slots = [self.init_slots(p) for p in params]
        elif len(self.slots) != len(params):
            raise ValueError(f"This optimizer was started on {len(self.slots)} parameters, received {len(params)}")
        self.iterations += 1
        for p, g, s, g2 in zip(params, grads, self.slots, grad_squares or [None] * len(params)):
            if g.shape != p.shape:
                raise ValueError(f"Gradient of shape {g.shape} for a parameter of shape {p.shape}")
            g = g.astype(p.dtype, copy=False)
            self.update(p, g, s, None if g2 is None else g2.astype(p.dtype, copy=False))

    def init_slots(self, p: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def update(self, p: np.ndarray, g: np.ndarray, s: dict, g2: np.ndarray) -> None:
        """Update ``p`` in place from its gradient ``g``, its slots ``s`` and ``g2`` (None: ``g*g``)."""
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

    def update(self, p, g, s, g2):
        lr, momentum = keras_cast(self.learning_rate, p.dtype), keras_cast(self.momentum, p.dtype)
        if not self.momentum:
            p -= lr * g
            return
        m = s["m"]
        m *= momentum
        m -= lr * g
        if self.nesterov:
            p += momentum * m - lr * g
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

    def update(self, p, g, s, g2):
        t = self.iterations
        dt = p.dtype.type
        b1, b2 = keras_cast(self.beta_1, p.dtype), keras_cast(self.beta_2, p.dtype)
        lr_t = keras_cast(self.learning_rate, p.dtype) * np.sqrt(1 - b2 ** dt(t)) / (1 - b1 ** dt(t))
        m, v = s["m"], s["v"]
        m += (g - m) * dt(1 - self.beta_1)  # not 1 - b1: Keras subtracts in Python floats
        v += ((g * g if g2 is None else g2) - v) * dt(1 - self.beta_2)
        if self.amsgrad:
            np.maximum(s["v_hat"], v, out=s["v_hat"])
            v = s["v_hat"]
        p -= lr_t * m / (np.sqrt(v) + dt(self.epsilon))


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

    def update(self, p, g, s, g2):
        dt = p.dtype.type
        rho, one_minus_rho, epsilon = dt(self.rho), dt(1 - self.rho), dt(self.epsilon)
        lr = keras_cast(self.learning_rate, p.dtype)
        v = s["v"]
        v[...] = rho * v + one_minus_rho * (g * g if g2 is None else g2)
        if self.centered:
            s["g_avg"][...] = rho * s["g_avg"] + one_minus_rho * g
            denominator = v - s["g_avg"] ** 2 + epsilon
        else:
            denominator = v + epsilon
        increment = lr * g / np.sqrt(denominator)
        if self.momentum:
            s["m"][...] = dt(self.momentum) * s["m"] + increment
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
