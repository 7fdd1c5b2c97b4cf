"""Read Keras models: a live ``keras.Model`` (``from_keras``) or a saved file (``load_keras``).

Keras is imported here only, lazily. The graph comes from the model's config (Keras 3 functional
format: ``inbound_nodes`` with ``keras_history`` references), the weights from each layer's
``get_weights()``; every layer is rebuilt by class name and its options checked, so anything we do
not reproduce exactly is refused with ``UnsupportedLayerError`` instead of giving wrong answers.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import UnsupportedLayerError
from .layers import InputLayer, layer_from_keras_config
from .model import Model, Node
from .ops import Op

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def detect_format(path: str | os.PathLike) -> str:
    """'keras' for a Keras 3 zip archive, 'h5' for legacy HDF5 -- by content, not by extension."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_SIGNATURE:
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras"
    raise ValueError(f"{os.path.basename(path)} is neither a Keras 3 .keras zip nor a legacy HDF5 file "
                     f"(it starts with {head!r})")


def load_keras(path: str | os.PathLike) -> Model:
    """Load a saved Keras model (``.keras`` zip or legacy ``.h5``, whatever its file name says)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No Keras model file at {path}")
    fmt = detect_format(path)
    with tempfile.TemporaryDirectory() as tmp:
        # Keras picks its reader by extension: give it a copy with the right one.
        target = Path(tmp) / f"model.{fmt}"
        shutil.copyfile(path, target)
        keras_model = keras.saving.load_model(target, compile=False)
    return from_keras(keras_model)


def _tensor_ref(value) -> tuple | None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        hist = value["config"]["keras_history"]
        return (hist[0], int(hist[1]), int(hist[2]))
    return None


def _args(value):
    """Config arguments -> tensor refs (tuples), lists of them, or constants: Keras' ``__tensor__``
    (a constant array, e.g. a position embedding folded at graph construction) as an ndarray, its
    ``__slice__`` (an index of ``x[...]``) as a slice."""
    ref = _tensor_ref(value)
    if ref is not None:
        return ref
    if isinstance(value, dict) and value.get("class_name") == "__tensor__":
        return np.asarray(value["config"]["value"], value["config"].get("dtype") or "float32")
    if isinstance(value, dict) and value.get("class_name") == "__slice__":
        c = value["config"]
        return slice(c.get("start"), c.get("stop"), c.get("step"))
    if isinstance(value, dict) and value.get("class_name") == "__ellipsis__":
        return Ellipsis
    if isinstance(value, (list, tuple)):
        return [_args(v) for v in value]
    return value


#: Call keyword arguments that change nothing at inference when they have these values.
HARMLESS_CALL_KWARGS = {"return_attention_scores": (False, None), "use_causal_mask": (False, None),
                        "initial_state": (None,), "attention_mask": (None,), "key": (None,)}


def _call_kwargs(name: str, cls_name: str, layer, kwargs: dict) -> tuple[list | None, dict]:
    """A node's call kwargs -> (the query when passed by name, the kwargs the layer takes); anything
    else (e.g. ``return_attention_scores=True``) is refused by name."""
    taken, query = {}, None
    accepted = getattr(layer, "call_args", ())
    for key, value in kwargs.items():
        if key in ("mask", "training"):
            continue
        if key == "query" and cls_name == "MultiHeadAttention":
            query = _args(value)
        elif key in HARMLESS_CALL_KWARGS and value in HARMLESS_CALL_KWARGS[key] and not isinstance(value, dict):
            continue
        elif key in accepted:
            taken[key] = _args(value)
        else:
            raise UnsupportedLayerError(name, cls_name, f"call argument `{key}`={value!r}")
    return query, taken


def from_keras(keras_model) -> Model:
    """A scratch ``Model`` with the same graph and weights as a live Keras model (Sequential or Functional)."""
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise UnsupportedLayerError(keras_model.name, type(keras_model).__name__,
                                    f"{len(keras_model.inputs)} inputs and {len(keras_model.outputs)} outputs "
                                    "(one of each is supported)")
    ktensor = keras_model.inputs[0]
    dtype = getattr(ktensor.dtype, "name", ktensor.dtype)
    shape = [None, *[int(d) if d is not None else None for d in ktensor.shape[1:]]]
    config = keras_model.get_config()
    class_name = type(keras_model).__name__

    if class_name == "Sequential":
        input_layer = InputLayer(shape=shape, dtype=str(dtype), name="input_layer")
        layers = []
        for klayer in keras_model.layers:
            _refuse_nested(klayer)
            layers.append(layer_from_keras_config(type(klayer).__name__, klayer.get_config()))
        model = Model.sequential(input_layer, layers, name=keras_model.name)
    else:
        inputs, layers, nodes = [], {}, []
        for spec in config["layers"]:
            name, cls_name = spec.get("name") or spec["config"]["name"], spec["class_name"]
            if cls_name == "InputLayer":
                inputs.append(InputLayer(shape=shape, dtype=str(dtype), name=name))
                continue
            module = spec.get("module") or ""
            if module.startswith("keras.src.ops") or module.startswith("keras.ops"):
                layers[name] = Op(cls_name, name, spec["config"])
            else:
                klayer = keras_model.get_layer(name)
                _refuse_nested(klayer)
                layers[name] = layer_from_keras_config(cls_name, klayer.get_config())
            for index, inbound in enumerate(spec.get("inbound_nodes", [])):
                if isinstance(inbound, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
                    args = _args(inbound.get("args", []))
                    kwargs = inbound.get("kwargs", {}) or {}
                else:  # Keras 2 style: [[name, node, tensor, kwargs], ...]
                    args = [[(e[0], int(e[1]), int(e[2])) for e in inbound]]
                    kwargs = inbound[0][3] if inbound and len(inbound[0]) > 3 else {}
                mask = _tensor_ref(kwargs.get("mask")) if isinstance(kwargs, dict) else None
                query, taken = _call_kwargs(name, cls_name, layers[name], kwargs or {})
                args = list(args) if query is None else [query, *args]
                if "value" in taken and len(args) == 1:  # MultiHeadAttention(query=..., value=...): positional
                    args.append(taken.pop("value"))
                nodes.append(Node(name, index, args, mask, taken))
        outputs = [_tensor_ref(o) or tuple(o) for o in _listify(config["output_layers"])]
        if len(inputs) != 1:
            raise UnsupportedLayerError(keras_model.name, class_name, f"{len(inputs)} input layers")
        model = Model(inputs, layers, nodes, outputs, keras_model.name).build()
    if any(getattr(layer, "dtype", None) == np.float64 for layer in model.layers.values()):
        model.astype(np.float64)  # a float64 Keras model computes in float64 here too
    model.set_weights(_keras_weights_in_order(keras_model, model))
    return model


def _listify(v):
    if isinstance(v, (list, tuple)) and len(v) == 3 and isinstance(v[0], str):
        return [v]
    return list(v)


def _refuse_nested(klayer) -> None:
    import keras
    if isinstance(klayer, keras.Model):
        raise UnsupportedLayerError(klayer.name, type(klayer).__name__, "a nested model (flatten it first)")


def _keras_weights_in_order(keras_model, model: Model) -> list:
    """The Keras weights of each scratch weight layer, in the scratch model's layer order."""
    weights = []
    for layer in model.weight_layers():
        klayer = keras_model.get_layer(layer.name)
        kw = klayer.get_weights()
        if len(kw) != len(layer.weights):
            raise UnsupportedLayerError(layer.name, type(klayer).__name__,
                                        f"{len(kw)} weight arrays where {len(layer.weights)} "
                                        f"({list(layer.weights)}) were expected")
        weights.extend(kw)
    return weights
