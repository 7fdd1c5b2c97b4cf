"""Scratch backend: the NumPy engine of ``scratch_models`` reading ``architecture.json`` + ``weights.npz``."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .base import Backend, BackendLoadError, InputSpec, verify_file


class ScratchBackend(Backend):
    name = "scratch"
    served_file = "weights.npz"

    def __init__(self, model, **kw) -> None:
        super().__init__(**kw)
        self._model = model

    @classmethod
    def load(cls, arch_dir: Path, manifest: dict, input_spec: InputSpec, vectorizer=None) -> "ScratchBackend":
        t0 = time.perf_counter()
        verify_file(arch_dir / "architecture.json", manifest)
        sha = verify_file(arch_dir / cls.served_file, manifest)
        try:
            import scratch_models
            model = scratch_models.load(arch_dir)
        except Exception as exc:  # IntegrityError, UnsupportedLayerError, a missing file...
            raise BackendLoadError(f"the scratch engine could not load {arch_dir.name}/ "
                                   f"({type(exc).__name__}: {exc})") from None
        classes = tuple(manifest["classes"])
        expected = (None, *input_spec.shape)
        if tuple(model.input_shape) != expected:
            raise BackendLoadError(f"architecture.json takes input {tuple(model.input_shape)}, the manifest says {expected}")
        vec = vectorizer or getattr(model, "vectorizer", None)
        if input_spec.kind == "text" and vec is None:
            raise BackendLoadError("architecture.json of a text model holds no text vectorizer")
        probe = model.predict(np.ones((1, *input_spec.shape), dtype=np.float32 if input_spec.kind == "image" else np.int32))
        if probe.shape != (1, len(classes)):
            raise BackendLoadError(f"the scratch model outputs shape {probe.shape[1:]}, the manifest has "
                                   f"{len(classes)} classes")
        return cls(model, arch=manifest["arch"], classes=classes, input_spec=input_spec, sha256=sha,
                   params=int(model.count_params()), vectorizer=vec, load_seconds=time.perf_counter() - t0)

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict(batch), dtype=np.float32)
