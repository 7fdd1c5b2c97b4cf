"""The op nodes Keras 3 saves in a functional graph for ``keras.ops`` calls (e.g. ``NotEqual(x, 0)``
passed as ``mask=`` into a recurrent layer, ``x[:, 1:]``, ``ops.mean(x, axis=1)``). Each takes its
positional arguments, tensors or constants (``__tensor__`` arrays, slices), and its Keras config (axis,
keepdims, newshape, ...); an op or config value not listed here is refused by name."""
from __future__ import annotations

import numpy as np

from . import activations
from .errors import UnsupportedLayerError
from .layers.base import Layer

ELEMENTWISE = {
    "NotEqual": np.not_equal, "Equal": np.equal, "Greater": np.greater, "GreaterEqual": np.greater_equal,
    "Less": np.less, "LessEqual": np.less_equal, "LogicalAnd": np.logical_and, "LogicalOr": np.logical_or,
    "LogicalNot": np.logical_not, "Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply,
    "Divide": np.divide, "TrueDivide": np.divide, "Maximum": np.maximum, "Minimum": np.minimum, "Power": np.power,
    "Negative": np.negative, "Absolute": np.abs, "Abs": np.abs, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
    "Square": np.square, "Tanh": np.tanh, "Sigmoid": activations.sigmoid, "Relu": activations.relu,
    "Silu": activations.swish, "Erf": activations.erf, "Where": np.where, "Matmul": np.matmul, "Dot": np.dot,
}


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _gelu(x, approximate=True):
    if not approximate:
        return activations.gelu(x)
    c = x.dtype.type(np.sqrt(2 / np.pi))
    return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3)))


def _reduce(fn):
    def run(x, axis=None, keepdims=False, initial=None):
        if initial is not None:
            return fn(x, axis=_axis(axis), keepdims=keepdims, initial=initial)
        return fn(x, axis=_axis(axis), keepdims=keepdims)
    return run


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _cast(x, dtype):
    if dtype not in CASTS:
        raise ValueError(f"Cast to {dtype!r}: expected one of {CASTS}")
    return np.asarray(x).astype(dtype)


CASTS = ("float32", "float64", "int32", "int64", "bool")

#: ops with a config: the function takes the positional arguments and the config's keys as keywords.
CONFIGURED = {
    "Mean": _reduce(np.mean), "Sum": _reduce(np.sum), "Max": _reduce(np.max), "Min": _reduce(np.min),
    "ExpandDims": lambda x, axis: np.expand_dims(x, _axis(axis)),
    "Squeeze": lambda x, axis=None: np.squeeze(x, _axis(axis)),
    "Reshape": lambda x, newshape: np.reshape(x, newshape),
    "Transpose": lambda x, axes=None: np.transpose(x, axes),
    "Concatenate": lambda xs, axis=0: np.concatenate(xs, axis=axis),
    "Stack": lambda xs, axis=0: np.stack(xs, axis=axis),
    "Take": lambda x, indices, axis=None: np.take(x, np.asarray(indices), axis=axis),
    "GetItem": lambda x, key: x[tuple(key) if isinstance(key, list) else key],
    "Cast": _cast, "Softmax": _softmax, "LogSoftmax": lambda x, axis=-1: np.log(_softmax(x, axis)),
    "Gelu": _gelu, "Clip": lambda x, x_min, x_max: np.clip(x, x_min, x_max),
    "Einsum": lambda *xs, subscripts: np.einsum(subscripts, *xs),
    "Rsqrt": lambda x: 1 / np.sqrt(x),
}
OPS = {**{k: (lambda f: lambda *a: f(*a))(f) for k, f in ELEMENTWISE.items()}, **CONFIGURED}


class Op(Layer):
    """A stateless layer applying a NumPy function to all its arguments (no weights; its output carries
    no mask). ``forward`` takes the list of resolved arguments, tensors or constants."""

    supports_masking = False
    takes_all_args = True  # graph.call_node passes every argument to forward

    def __init__(self, class_name: str, name: str, config: dict | None = None):
        if class_name not in OPS:
            raise UnsupportedLayerError(name, class_name, f"op {class_name} (supported ops: {sorted(OPS)})")
        super().__init__(name)
        self.class_name = class_name
        self.config = {k: v for k, v in (config or {}).items() if k != "name"}
        if class_name in ELEMENTWISE and self.config:
            raise UnsupportedLayerError(name, class_name, f"op options {sorted(self.config)}")
        if class_name == "Cast" and self.config.get("dtype") not in CASTS:
            raise UnsupportedLayerError(name, class_name, f"dtype={self.config.get('dtype')!r} (supported: {CASTS})")
        self.fn = OPS[class_name]

    def get_config(self) -> dict:
        return {"name": self.name, **self.config}

    def forward(self, args, mask=None, training=False):
        try:
            return self.fn(*args, **self.config)
        except TypeError as exc:  # a config key this op does not take
            raise UnsupportedLayerError(self.name, self.class_name, f"op arguments {sorted(self.config)} ({exc})") from None

    def backward(self, dout):
        return None  # ops compute masks and constants: nothing to differentiate through

    def compute_mask(self, x, mask):
        return None
