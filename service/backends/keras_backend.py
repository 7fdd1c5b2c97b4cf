"""Keras backend: ``model.keras`` served through a ``tf.function`` with a fixed input signature.

``model.predict`` costs tens of milliseconds per call whatever the batch; a traced function with
``input_signature`` (batch dimension ``None``) is traced once at load time and then costs ~1 ms.
TensorFlow is imported here, lazily, so a machine without it still serves the scratch backend.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .base import Backend, BackendLoadError, InputSpec, verify_file


class KerasBackend(Backend):
    name = "keras"
    served_file = "model.keras"

    def __init__(self, fn, tf_module, **kw) -> None:
        super().__init__(**kw)
        self._fn = fn
        self._tf = tf_module

    @classmethod
    def load(cls, arch_dir: Path, manifest: dict, input_spec: InputSpec, vectorizer=None) -> "KerasBackend":
        t0 = time.perf_counter()
        sha = verify_file(arch_dir / cls.served_file, manifest)
        if input_spec.kind == "text" and vectorizer is None:
            raise BackendLoadError("a text model needs its vectorizer.json")
        try:
            import keras
            import tensorflow as tf
        except ImportError as exc:
            raise BackendLoadError(f"TensorFlow/Keras is not installed ({type(exc).__name__}: {exc})") from None
        try:
            model = keras.saving.load_model(arch_dir / cls.served_file, compile=False, safe_mode=True)
        except Exception as exc:  # a file Keras cannot read: report why, keep the service up
            raise BackendLoadError(f"Keras could not load {cls.served_file} ({type(exc).__name__}: {exc})") from None
        classes = tuple(manifest["classes"])
        dtype = tf.float32 if input_spec.kind == "image" else tf.int32
        signature = [tf.TensorSpec(shape=(None, *input_spec.shape), dtype=dtype, name="inputs")]
        fn = tf.function(lambda x: model(x, training=False), input_signature=signature, jit_compile=False)
        probe = fn(np.ones((1, *input_spec.shape), dtype=dtype.as_numpy_dtype)).numpy()  # traces once
        if probe.shape != (1, len(classes)):
            raise BackendLoadError(f"model.keras outputs shape {probe.shape[1:]}, the manifest has "
                                   f"{len(classes)} classes")
        return cls(fn, tf, arch=manifest["arch"], classes=classes, input_spec=input_spec, sha256=sha,
                   params=int(model.count_params()), vectorizer=vectorizer,
                   load_seconds=time.perf_counter() - t0)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        dtype = np.float32 if self.input_spec.kind == "image" else np.int32
        return np.asarray(self._fn(np.ascontiguousarray(batch, dtype=dtype)), dtype=np.float32)
