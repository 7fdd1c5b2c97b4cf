"""Inference backends: the same model served by Keras (TensorFlow) or by the NumPy scratch engine."""
from .base import Backend, BackendLoadError, InputSpec

__all__ = ["Backend", "BackendLoadError", "InputSpec"]
