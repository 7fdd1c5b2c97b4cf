"""Keras backend: the model's Keras file served through a ``tf.function`` with a fixed input signature.

``model.predict`` costs tens of milliseconds per call whatever the batch; a traced function with
``input_signature`` (batch dimension ``None``) is traced once at load time and then costs ~1 ms.
TensorFlow is imported lazily (:mod:`service.repository.keras_files`), so a machine without it still serves
the scratch backend. The file is read by content with ``safe_mode=True``; a TextVectorization layer inside
the model is split off, so the network takes the same token ids as the scratch backend.
"""
from __future__ import annotations

import time

import numpy as np

from .base import Backend, BackendLoadError, InputSpec, ModelFiles, verify_file


class KerasBackend(Backend):
    name = "keras"
    served_file = "model.keras"

    def __init__(self, fn, dtype, **kw) -> None:
        super().__init__(**kw)
        self._fn = fn
        self._dtype = dtype

    @classmethod
    def load(cls, files: ModelFiles, input_spec: InputSpec, vectorizer=None) -> "KerasBackend":
        from ..repository.keras_files import import_keras, keras_input_dtype, load_keras_model, split_network

        t0 = time.perf_counter()
        if files.keras_file is None:
            raise BackendLoadError("no Keras file in this model's folder")
        sha = verify_file(files.keras_file, files.checksums)
        if input_spec.kind == "text" and vectorizer is None and files.manifest.get("requires_vectorizer"):
            raise BackendLoadError("a text model needs its vectorizer.json")
        import_keras()
        import tensorflow as tf

        network, _ = split_network(load_keras_model(files.keras_file))
        classes = files.classes
        dtype = tf.as_dtype(keras_input_dtype(network))
        signature = [tf.TensorSpec(shape=(None, *input_spec.shape), dtype=dtype, name="inputs")]
        fn = tf.function(lambda x: network(x, training=False), input_signature=signature, jit_compile=False)
        try:
            probe = np.asarray(fn(np.ones((1, *input_spec.shape), dtype=dtype.as_numpy_dtype)))  # traces once
        except Exception as exc:
            raise BackendLoadError(f"Keras could not run {files.keras_file.name} on a probe input "
                                   f"({type(exc).__name__}: {str(exc)[:300]})") from None
        if probe.shape != (1, len(classes)):
            raise BackendLoadError(f"{files.keras_file.name} outputs shape {probe.shape[1:]}, the manifest has "
                                   f"{len(classes)} classes")
        return cls(fn, dtype.as_numpy_dtype, arch=files.name, version=files.version, classes=classes,
                   input_spec=input_spec, sha256=sha, params=int(network.count_params()), vectorizer=vectorizer,
                   load_seconds=time.perf_counter() - t0)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(np.ascontiguousarray(batch, dtype=self._dtype)), dtype=np.float32)
