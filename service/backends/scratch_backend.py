"""Scratch backend: the NumPy engine of ``scratch_models`` reading ``architecture.json`` + ``weights.npz``.

Nothing in the files is executed: the artifact is JSON and a NumPy archive read with ``allow_pickle=False``,
each checked against the manifest's sha256 and the engine's own.
"""
from __future__ import annotations

import time

import numpy as np

from .base import Backend, BackendLoadError, InputSpec, ModelFiles, verify_file


class ScratchBackend(Backend):
    name = "scratch"
    served_file = "weights.npz"

    def __init__(self, model, **kw) -> None:
        super().__init__(**kw)
        self._model = model

    @classmethod
    def load(cls, files: ModelFiles, input_spec: InputSpec, vectorizer=None) -> "ScratchBackend":
        t0 = time.perf_counter()
        if files.scratch_reason:
            raise BackendLoadError(files.scratch_reason)
        if files.artifact_dir is None:
            raise BackendLoadError("no scratch artifact (architecture.json + weights.npz) for this model")
        verify_file(files.artifact_dir / "architecture.json", files.checksums)
        sha = verify_file(files.artifact_dir / cls.served_file, files.checksums)
        try:
            import scratch_models
            model = scratch_models.load(files.artifact_dir)
        except Exception as exc:  # IntegrityError, UnsupportedLayerError, a missing file...
            raise BackendLoadError(f"the scratch engine could not load {files.artifact_dir.name}/ "
                                   f"({type(exc).__name__}: {exc})") from None
        classes = files.classes
        expected = (None, *input_spec.shape)
        if tuple(model.input_shape) != expected:
            raise BackendLoadError(f"architecture.json takes input {tuple(model.input_shape)}, the manifest says {expected}")
        vec = vectorizer or getattr(model, "vectorizer", None)
        if input_spec.kind == "text" and vec is None and files.manifest.get("requires_vectorizer"):
            raise BackendLoadError("architecture.json of a text model holds no text vectorizer")
        try:
            probe = model.predict(np.ones((1, *input_spec.shape), dtype=input_spec.numpy_dtype))
        except Exception as exc:
            raise BackendLoadError(f"the scratch engine could not run a probe input ({type(exc).__name__}: {exc})") from None
        if probe.shape != (1, len(classes)):
            raise BackendLoadError(f"the scratch model outputs shape {probe.shape[1:]}, the manifest has "
                                   f"{len(classes)} classes")
        return cls(model, arch=files.name, version=files.version, classes=classes, input_spec=input_spec,
                   sha256=sha, params=int(model.count_params()), vectorizer=vec, load_seconds=time.perf_counter() - t0)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict(batch), dtype=np.float32)
