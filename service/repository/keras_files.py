"""Reading a person's Keras file safely: by content (HDF5 or zip, whatever the name says), with
``safe_mode=True`` (a Lambda layer carrying Python code is refused, nothing in the file is executed), and
the network split from a TextVectorization layer inside it, so both backends take the same token ids.

TensorFlow/Keras are imported here lazily: only converting a bare Keras file and the keras backend need them.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scratch_models.keras_loader import detect_format

from ..backends.base import BackendLoadError, InputSpec

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
INSTALL_KERAS = 'pip install "scratch-serve[keras]"'


def sniff_format(path: Path) -> str:
    """'h5' (legacy HDF5) or 'keras' (Keras 3 zip), by content (the engine's sniffer); raises
    :class:`BackendLoadError`."""
    try:
        return detect_format(path)
    except OSError as exc:
        raise BackendLoadError(f"{path.name} cannot be read ({exc})") from None
    except ValueError as exc:
        raise BackendLoadError(str(exc)) from None


def import_keras():
    """``keras`` (with TensorFlow), or :class:`BackendLoadError` naming the install line."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow  # noqa: F401  (the keras backend runs on TensorFlow)
    except ImportError as exc:
        raise BackendLoadError(f"TensorFlow/Keras is not installed ({type(exc).__name__}: {exc}); "
                               f"install the keras extra: {INSTALL_KERAS}") from None
    return keras


def load_keras_model(path: Path):
    """A ``keras.Model`` from ``path`` read by content with ``safe_mode=True``; raises :class:`BackendLoadError`."""
    keras = import_keras()
    fmt = sniff_format(path)
    with tempfile.TemporaryDirectory(prefix="scratch-serve-") as tmp:
        target = Path(tmp) / f"model.{fmt}"   # Keras picks its reader by the extension
        os.symlink(Path(path).resolve(), target)
        try:
            return keras.saving.load_model(target, compile=False, safe_mode=True)
        except Exception as exc:  # a file Keras cannot (or will not) read: the reason, not a crash
            message = str(exc).split("\n")[0][:400]
            if "Lambda" in message or "lambda" in message:
                message = ("it holds a Lambda layer with Python code, which is never executed here "
                           f"(safe_mode): {message}")
            raise BackendLoadError(f"Keras could not load {Path(path).name} ({type(exc).__name__}: {message})") from None


def find_text_vectorization(model):
    """The TextVectorization layer a string-input model feeds its input through, or None."""
    keras = import_keras()
    found = [layer for layer in model.layers if isinstance(layer, keras.layers.TextVectorization)]
    if not found:
        return None
    if len(found) > 1:
        raise BackendLoadError(f"{len(found)} TextVectorization layers; one is supported")
    return found[0]


def vectorizer_from_holder(path: Path):
    """The fitted TextVectorization layer inside a separate vectorizer file (a Keras model holding it)."""
    holder = load_keras_model(path)
    layer = find_text_vectorization(holder)
    if layer is None:
        raise BackendLoadError(f"{path.name} holds no TextVectorization layer")
    return layer


def split_network(model):
    """(network, vectorization layer or None): for a string-input model, the sub-model from the layer's
    output (token ids) to the model's output; any other model is its own network."""
    keras = import_keras()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BackendLoadError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                               "one of each is supported")
    dtype = getattr(model.inputs[0].dtype, "name", model.inputs[0].dtype)
    if str(dtype) != "string":
        return model, None
    layer = find_text_vectorization(model)
    if layer is None:
        raise BackendLoadError("the model takes strings but holds no TextVectorization layer")
    try:
        network = keras.Model(layer.output, model.output)
    except Exception as exc:
        raise BackendLoadError(f"cannot separate the TextVectorization layer from the network "
                               f"({type(exc).__name__}: {exc})") from None
    return network, layer


def describe_input(network) -> InputSpec:
    """The :class:`InputSpec` of a Keras network: an Embedding reading the input -> token ids; a rank-4
    float input with 1-4 channels -> an image (pixels assumed in [0, 1]); anything else a tensor."""
    keras = import_keras()
    tensor = network.inputs[0]
    dims = tuple(tensor.shape[1:])
    if any(d is None for d in dims):
        raise BackendLoadError(f"the input shape {(None, *dims)} has free dimensions besides the batch; "
                               "fixed sizes are needed (e.g. Input((80,)) or Input((32, 32, 3)))")
    dims = tuple(int(d) for d in dims)
    dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
    embedding = next((layer for layer in network.layers if isinstance(layer, keras.layers.Embedding)
                      and _reads(layer, tensor)), None)
    if embedding is not None and len(dims) == 1:
        return InputSpec("text", dims, "int32", dims[0], vocabulary_size=int(embedding.input_dim))
    if dtype.startswith("int") and len(dims) == 1:
        return InputSpec("text", dims, "int32", dims[0])
    if len(dims) == 3 and dims[-1] in (1, 3, 4) and dtype.startswith("float"):
        return InputSpec("image", dims, dtype if dtype in ("float32", "float64") else "float32", value_range=(0.0, 1.0))
    if dtype not in ("float32", "float64", "int32", "int64"):
        raise BackendLoadError(f"input dtype {dtype} is not supported (float32, float64, int32, int64)")
    return InputSpec("tensor", dims, dtype)


def _reads(layer, tensor) -> bool:
    try:
        return layer.input is tensor
    except (AttributeError, ValueError):
        return False


def keras_input_dtype(network) -> str:
    return str(getattr(network.inputs[0].dtype, "name", network.inputs[0].dtype))
