"""scratch_models: a NumPy engine that loads Keras models and reproduces their outputs.

    import scratch_models
    model = scratch_models.load_keras("weights/cnn/model.keras")   # Keras needed here only
    scratch_models.save(model, "weights/cnn")
    model = scratch_models.load("weights/cnn")                      # NumPy only
    probs = model.predict(images)                                   # (N, 10) float32

Importing this package needs NumPy only; TensorFlow/Keras are imported by ``from_keras`` and
``load_keras`` when called.
"""
from . import losses, optimizers  # scratch_models.optimizers.Adam, as keras.optimizers.Adam
from .artifact import load, save
from .errors import IntegrityError, UnsupportedLayerError
from .keras_loader import from_keras, load_keras
from .model import Model
from .text import TextVectorizer

__all__ = ["from_keras", "load_keras", "save", "load", "Model", "TextVectorizer",
           "UnsupportedLayerError", "IntegrityError", "losses", "optimizers"]
__version__ = "0.1.0"
