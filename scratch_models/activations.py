"""Keras activations by name, each with its derivative (used by ``backward``).

Every function maps a float32 array to an array of the same shape; ``softmax`` works on the last axis.
The forms follow Keras 3 (``keras.activations``), e.g. ``hard_sigmoid(x) = relu6(x + 3) / 6`` and
``leaky_relu`` with ``negative_slope=0.2``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def linear(x):
    return x


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    # sigmoid(x) = (1 + tanh(x/2)) / 2: no overflow for any x, and three array passes (the LSTM's hot path).
    half = x.dtype.type(0.5) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else 0.5
    return half * (1 + np.tanh(half * x))


def tanh(x):
    return np.tanh(x)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def selu(x):
    return (SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))).astype(x.dtype, copy=False)


def softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def softsign(x):
    return x / (1 + np.abs(x))


def swish(x):
    return x * sigmoid(x)


def exponential(x):
    return np.exp(x)


def leaky_relu(x, negative_slope: float = 0.2):
    return np.where(x > 0, x, x * np.asarray(negative_slope, x.dtype)).astype(x.dtype, copy=False)


def relu6(x):
    return np.clip(x, 0, 6).astype(x.dtype, copy=False)


def hard_silu(x):
    """``x * hard_sigmoid(x) = x * relu6(x + 3) / 6`` (Keras' ``hard_silu``, alias ``hard_swish``)."""
    return x * hard_sigmoid(x)


def erf(x):
    """The error function to float32 precision without SciPy: Numerical Recipes' Chebyshev fit of
    ``erfc`` (fractional error < 1.2e-7 everywhere), ``erf = 1 - erfc`` with erf's odd symmetry."""
    z = np.abs(x)
    t = 1 / (1 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return (np.sign(x) * (1 - t * np.exp(poly))).astype(x.dtype, copy=False)


def gelu(x):
    """Keras' default (exact) GELU: ``0.5 x (1 + erf(x / sqrt(2)))``."""
    return (0.5 * x * (1 + erf(x * x.dtype.type(1 / np.sqrt(2))))).astype(x.dtype, copy=False)


def log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def mish(x):
    return x * np.tanh(softplus(x))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "hard_sigmoid": hard_sigmoid, "elu": elu, "selu": selu, "softplus": softplus,
    "softsign": softsign, "swish": swish, "silu": swish, "exponential": exponential,
    "leaky_relu": leaky_relu, "relu6": relu6, "hard_silu": hard_silu, "hard_swish": hard_silu,
    "gelu": gelu, "log_softmax": log_softmax, "mish": mish,
}


def activation_name(spec) -> str:
    """Normalise a Keras activation spec (None, a name, or a serialized dict) to a name we know."""
    if spec is None:
        return "linear"
    if isinstance(spec, dict):  # Keras 3 may serialize {"class_name": "function", "config": "relu", ...}
        spec = spec.get("config", spec.get("class_name"))
        if isinstance(spec, dict):
            spec = spec.get("name")
    if not isinstance(spec, str):
        raise ValueError(f"Expected an activation name, received {spec!r}")
    return spec


def get(spec) -> Callable[[np.ndarray], np.ndarray]:
    name = activation_name(spec)
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"Expected an activation in {sorted(ACTIVATIONS)}, received {name!r}") from None


def derivative(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d act(x) / dx element-wise, given the input ``x`` and the output ``y = act(x)`` (not for softmax)."""
    if name == "linear":
        return np.ones_like(x)
    if name == "relu":
        return (x > 0).astype(x.dtype)
    if name == "sigmoid":
        return y * (1 - y)
    if name == "tanh":
        return 1 - y * y
    if name == "hard_sigmoid":
        return ((x > -3) & (x < 3)).astype(x.dtype) / 6
    if name == "elu":
        return np.where(x > 0, 1, y + 1).astype(x.dtype)
    if name == "selu":
        return np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA).astype(x.dtype)
    if name == "softplus":
        return sigmoid(x)
    if name == "softsign":
        return 1 / (1 + np.abs(x)) ** 2
    if name in ("swish", "silu"):
        s = sigmoid(x)
        return s * (1 + x * (1 - s))
    if name == "exponential":
        return y
    if name == "leaky_relu":
        return np.where(x > 0, 1, 0.2).astype(x.dtype)
    if name == "relu6":
        return ((x > 0) & (x < 6)).astype(x.dtype)
    if name in ("hard_silu", "hard_swish"):
        return (hard_sigmoid(x) + x * derivative("hard_sigmoid", x, None)).astype(x.dtype)
    if name == "gelu":
        pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        return (0.5 * (1 + erf(x * x.dtype.type(1 / np.sqrt(2)))) + x * pdf).astype(x.dtype)
    raise ValueError(f"No element-wise derivative for activation {name!r}")


def backward(name: str, dout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. the activation's input ``x`` given the gradient ``dout`` w.r.t. its output ``y``."""
    if name == "linear":
        return dout
    if name == "softmax":  # Jacobian-vector product on the last axis
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))
    if name == "log_softmax":  # d/dx of x - logsumexp(x): dout - softmax(x) * Σdout
        return dout - np.exp(y) * dout.sum(axis=-1, keepdims=True)
    return dout * derivative(name, x, y)
