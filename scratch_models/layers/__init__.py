"""The layer library: one class per Keras layer, looked up by Keras' class name."""
from __future__ import annotations

from ..errors import UnsupportedLayerError
from .base import Layer
from .attention import MultiHeadAttention
from .bidirectional import Bidirectional
from .conv1d import Conv1D
from .convolution import Conv2D
from .core import Activation, Dense, Flatten, InputLayer, LeakyReLU, ReLU, Softmax
from .depthwise import DepthwiseConv2D, SeparableConv2D
from .embedding import Embedding
from .gru import GRU
from .layer_normalization import LayerNormalization, UnitNormalization
from .masking import Masking
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D, MaxPooling2D)
from .pooling1d import AveragePooling1D, MaxPooling1D
from .preprocessing import Normalization, Rescaling
from .recurrent import LSTM, SimpleRNN
from .regularization import (AlphaDropout, Dropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D)
from .reshaping import (Cropping1D, Cropping2D, Permute, RepeatVector, Reshape, UpSampling1D, UpSampling2D,
                        ZeroPadding1D, ZeroPadding2D)

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    InputLayer, Dense, Activation, ReLU, LeakyReLU, Softmax, Flatten, Conv2D, MaxPooling2D, AveragePooling2D,
    GlobalMaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalAveragePooling1D,
    BatchNormalization, Embedding, SimpleRNN, LSTM, Bidirectional, Dropout, SpatialDropout1D,
    SpatialDropout2D, GaussianNoise, GaussianDropout, AlphaDropout, Add, Subtract, Multiply, Average,
    Maximum, Minimum, Concatenate,
    # issue 14: GRU, 1-D, CNN building blocks, normalisation, attention
    GRU, Masking, Conv1D, MaxPooling1D, AveragePooling1D, DepthwiseConv2D, SeparableConv2D, ZeroPadding1D,
    ZeroPadding2D, Cropping1D, Cropping2D, UpSampling1D, UpSampling2D, Rescaling, Normalization, Reshape, Permute,
    RepeatVector, LayerNormalization, UnitNormalization, MultiHeadAttention)}
# Keras' aliases.
LAYERS.update({"MaxPool2D": MaxPooling2D, "AvgPool2D": AveragePooling2D, "Convolution2D": Conv2D,
               "GlobalAvgPool1D": GlobalAveragePooling1D, "GlobalAvgPool2D": GlobalAveragePooling2D,
               "GlobalMaxPool1D": GlobalMaxPooling1D, "GlobalMaxPool2D": GlobalMaxPooling2D,
               "Convolution1D": Conv1D, "MaxPool1D": MaxPooling1D, "AvgPool1D": AveragePooling1D,
               "SeparableConvolution2D": SeparableConv2D})


def layer_from_keras_config(class_name: str, config: dict) -> Layer:
    """A scratch layer from a Keras layer's class name and ``get_config()``; unknown ones are refused."""
    name = config.get("name", class_name)
    if class_name == "Bidirectional":
        return _bidirectional_from_keras(config)
    if class_name == "InputLayer":
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        return InputLayer(shape=shape, dtype=config.get("dtype") or "float32", name=name)
    cls = LAYERS.get(class_name)
    if cls is None:
        raise UnsupportedLayerError(name, class_name, "this layer class is not implemented "
                                    f"(supported: {sorted(LAYERS)})")
    return cls.from_keras_config(config)


def _bidirectional_from_keras(config: dict) -> Bidirectional:
    name = config.get("name", "bidirectional")
    merge_mode = config.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "ave", "mul"):
        raise UnsupportedLayerError(name, "Bidirectional", f"merge_mode={merge_mode!r} (supported: concat, sum, ave, mul)")
    inner = config["layer"]
    forward = layer_from_keras_config(inner["class_name"], inner["config"])
    if config.get("backward_layer"):
        back_cfg = config["backward_layer"]
        backward = layer_from_keras_config(back_cfg["class_name"], back_cfg["config"])
    else:
        back = dict(inner["config"], go_backwards=not inner["config"].get("go_backwards", False))
        backward = layer_from_keras_config(inner["class_name"], back)
    if not hasattr(forward, "step"):
        raise UnsupportedLayerError(name, "Bidirectional", f"wrapped layer {inner['class_name']} is not recurrent")
    if forward.return_state or backward.return_state:
        raise UnsupportedLayerError(name, "Bidirectional", "return_state=True on the wrapped layer")
    return Bidirectional(forward, backward, merge_mode, name)


def serialize_layer(layer: Layer) -> dict:
    spec = {"class_name": type(layer).__name__, "config": layer.get_config()}
    if getattr(layer, "regularizers", None):
        spec["regularizers"] = layer.regularizers
    return spec


def deserialize_layer(spec: dict) -> Layer:
    cls = LAYERS.get(spec["class_name"])
    if cls is None:
        raise UnsupportedLayerError(spec["config"].get("name", "?"), spec["class_name"], "unknown layer class")
    layer = cls.from_config(spec["config"]) if hasattr(cls, "from_config") else cls(**spec["config"])
    layer.regularizers = spec.get("regularizers", {})
    return layer


__all__ = ["Layer", "LAYERS", "layer_from_keras_config", "serialize_layer", "deserialize_layer", *LAYERS]
