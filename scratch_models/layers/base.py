"""The layer contract every scratch layer follows.

A layer holds its weights under Keras' names, in Keras' order (``get_weights`` is what Keras'
``layer.get_weights()`` returns), knows the shapes they must have once built, and runs
``forward(x, mask=None, training=False)`` over a whole batch at once. Layers that propagate a
time-step mask (``supports_masking``) pass it on through ``compute_mask``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedLayerError

Shape = tuple  # (None, d1, d2, ...): the batch dimension first and unknown

# Keras config keys that carry no inference semantics (initialisers, regularisers, bookkeeping).
IGNORED_KEYS = frozenset({
    "name", "trainable", "dtype", "batch_input_shape", "batch_shape", "input_shape", "input_dim_",
    "kernel_initializer", "bias_initializer", "recurrent_initializer", "embeddings_initializer",
    "beta_initializer", "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
    "kernel_regularizer", "bias_regularizer", "recurrent_regularizer", "activity_regularizer",
    "embeddings_regularizer", "beta_regularizer", "gamma_regularizer",
    "kernel_constraint", "bias_constraint", "recurrent_constraint", "embeddings_constraint",
    "beta_constraint", "gamma_constraint", "unit_forget_bias", "seed", "noise_shape", "unroll",
    "implementation", "renorm_clipping", "renorm_momentum", "synchronized", "input_length", "sparse", "ragged", "optional",
    "quantization_config",
})


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected a positive integer for `{name}`, received: {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> Any:
    if value not in choices:
        raise ValueError(f"Expected `{name}` to be one of {tuple(choices)}, received: {value!r}")
    return value


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints -> (int, int), as Keras' ``kernel_size``/``strides``/``pool_size``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"Expected an integer or a pair of integers for `{name}`, received: {value!r}")
    return check_positive_int(value[0], name), check_positive_int(value[1], name)


def same_value(a, b) -> bool:
    """Equal and of the same type, element by element for lists and tuples: ``True`` is not ``1``, ``1.0``
    is not ``1``, ``None`` is only ``None`` (``==`` and ``in`` treat the first two as equal)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def is_one_of(value, allowed) -> bool:
    return any(same_value(value, a) for a in allowed)


REGULARIZED_WEIGHTS = {"kernel_regularizer": "kernel", "recurrent_regularizer": "recurrent_kernel",
                       "bias_regularizer": "bias", "embeddings_regularizer": "embeddings",
                       "gamma_regularizer": "gamma", "beta_regularizer": "beta"}


def keras_regularizers(config: dict, layer_name: str, class_name: str) -> dict[str, dict[str, float]]:
    """Keras' L1/L2/L1L2 weight regularizers of a layer config, by weight key (they add to the training loss)."""
    found = {}
    for key, weight in REGULARIZED_WEIGHTS.items():
        spec = config.get(key)
        if not spec:
            continue
        kind, cfg = spec.get("class_name"), spec.get("config", {})
        if kind not in ("L1", "L2", "L1L2"):
            raise UnsupportedLayerError(layer_name, class_name, f"`{key}` of class {kind!r} (supported: L1, L2, L1L2)")
        found[weight] = {"l1": float(cfg.get("l1", 0.0)), "l2": float(cfg.get("l2", 0.0))}
    return found


Cache = SimpleNamespace  # a small named structure for what forward keeps for backward


def dtype_policy_name(dtype) -> str | None:
    if isinstance(dtype, dict):
        cfg = dtype.get("config", {})
        return cfg.get("name") if isinstance(cfg, dict) else None
    return dtype


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"Expected `dtype` float32 or float64, received: {dtype}")
    return dtype


class Layer:
    """Base class: weights as an ordered dict of arrays named as in Keras, all of ``self.dtype``.

    ``dtype`` is float32 unless ``astype`` changes it (float64 for gradient checks); the layers with
    weights compute in it, the others in the dtype of their input.
    """

    supports_masking: ClassVar[bool] = False
    dtype: np.dtype = np.dtype(np.float32)
    #: Keras config options this class understands, with the values it reproduces (None: any value).
    options: ClassVar[dict[str, Any]] = {}
    #: Options Keras writes that this class does not implement but that change nothing at these values
    #: (e.g. Flatten's ``data_format='channels_last'``). Any other option is refused, whatever its value.
    harmless: ClassVar[dict[str, tuple]] = {}

    def __init__(self, name: str | None = None):
        self.name = name or type(self).__name__.lower()
        self.weights: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}  # filled by backward, same keys as weights
        # What Keras' optimizers square as g² where that is not grads[key]**2 (Embedding: see there).
        self.grad_squares: dict[str, np.ndarray] = {}
        self.cache = None  # what forward(training=True) keeps for backward
        self.regularizers: dict[str, dict[str, float]] = {}  # weight key -> {"l1": .., "l2": ..} (training only)
        self.built = False
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None

    # -- configuration -------------------------------------------------------------------------
    @classmethod
    def from_keras_config(cls, config: dict) -> "Layer":
        """Build from a Keras ``layer.get_config()``, refusing any option we do not reproduce."""
        name = config.get("name", cls.__name__.lower())
        policy = dtype_policy_name(config.get("dtype"))
        if policy not in (None, "float32", "float64", "int32", "int64"):
            raise UnsupportedLayerError(name, cls.__name__, f"dtype policy {policy!r} (float32 or float64 only)")
        kwargs = {}
        for key, value in config.items():
            if key in IGNORED_KEYS:
                continue
            if key not in cls.options:
                if key in cls.harmless and is_one_of(value, cls.harmless[key]):
                    continue
                known = f"; harmless at {cls.harmless[key]}" if key in cls.harmless else ""
                raise UnsupportedLayerError(name, cls.__name__, f"option `{key}`={value!r} (not implemented{known})")
            allowed = cls.options[key]
            if allowed is not None and not is_one_of(value, allowed):
                raise UnsupportedLayerError(name, cls.__name__, f"`{key}`={value!r} (supported: {allowed})")
            kwargs[key] = value
        layer = cls(name=name, **cls._adapt_keras_kwargs(kwargs))
        if policy == "float64":
            layer.dtype = np.dtype(np.float64)
        layer.regularizers = keras_regularizers(config, name, cls.__name__)
        return layer

    @classmethod
    def _adapt_keras_kwargs(cls, kwargs: dict) -> dict:
        return kwargs

    def get_config(self) -> dict:
        """JSON-serialisable constructor arguments (``type(self)(**get_config())`` rebuilds the layer)."""
        return {"name": self.name}

    # -- weights -------------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> Shape:
        """Create zero weights of the right shapes for ``input_shape``; return the output shape."""
        self.input_shape = input_shape
        shapes = self.weight_shapes(input_shape)
        self.weights = {k: np.zeros(s, self.dtype) for k, s in shapes.items()}
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True
        return self.output_shape

    def weight_shapes(self, input_shape: Shape) -> dict[str, tuple]:
        return {}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights.values()]

    def set_weights(self, weights: list) -> None:
        if len(weights) != len(self.weights):
            raise ValueError(f"Layer {self.name!r} expected {len(self.weights)} weight arrays "
                             f"({list(self.weights)}), received {len(weights)}")
        for (key, old), new in zip(self.weights.items(), weights):
            new = np.asarray(new)
            if new.shape != old.shape:
                raise ValueError(f"Layer {self.name!r} weight `{key}`: expected shape {old.shape}, "
                                 f"received {new.shape}")
            self.weights[key] = np.ascontiguousarray(new, dtype=self.dtype)

    def astype(self, dtype) -> "Layer":
        """Cast the weights to ``dtype`` (float32 or float64) and compute in it from now on."""
        self.dtype = check_float_dtype(dtype)
        self.weights = {k: np.ascontiguousarray(w, dtype=self.dtype) for k, w in self.weights.items()}
        return self

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights.values()))

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x, mask=None, training: bool = False):
        raise NotImplementedError

    def backward(self, dout):
        """d loss / d input of the last ``forward(..., training=True)``; fills ``self.grads``."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def compute_mask(self, x, mask):
        return mask if self.supports_masking else None

    def __call__(self, x, mask=None, training: bool = False):
        return self.forward(x, mask=mask, training=training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
