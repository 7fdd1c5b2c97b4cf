"""The backend interface: a loaded model that maps a network-input batch to class probabilities."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from scratch_models.io_utils import sha256_file


class BackendLoadError(RuntimeError):
    """A backend could not be loaded; the message is the reason shown to clients (503) and in /ready."""


@dataclass(frozen=True)
class InputSpec:
    """What the network takes: ``image`` float32 (N, 32, 32, 3) in [0, 1], or ``text`` int32 ids (N, L)."""
    kind: str                     # "image" | "text"
    shape: tuple[int, ...]        # without the batch dimension
    dtype: str                    # "float32" | "int32"
    sequence_length: int | None = None

    @classmethod
    def from_manifest(cls, spec: dict) -> "InputSpec":
        kind = spec.get("kind")
        if kind not in ("image", "text"):
            raise BackendLoadError(f"manifest input.kind must be 'image' or 'text', found {kind!r}")
        shape = tuple(int(d) for d in spec.get("shape", ()) if d is not None)
        if kind == "image":
            return cls("image", shape or (32, 32, 3), str(spec.get("dtype", "float32")))
        length = spec.get("sequence_length") or (shape[-1] if shape else None)
        if not length:
            raise BackendLoadError("manifest input of a text model names no sequence_length")
        return cls("text", (int(length),), str(spec.get("dtype", "int32")), int(length))


def verify_file(path: Path, manifest: dict) -> str:
    """The file's sha256, checked against ``manifest["files"][name]``; raises :class:`BackendLoadError`."""
    expected = (manifest.get("files") or {}).get(path.name)
    if not path.is_file():
        raise BackendLoadError(f"{path} is missing")
    if not expected:
        raise BackendLoadError(f"manifest.json lists no sha256 for {path.name}")
    actual = sha256_file(path)
    if actual != expected:
        raise BackendLoadError(f"{path.name} is corrupt or tampered with: sha256 {actual[:16]}... differs from "
                               f"the manifest's {expected[:16]}...")
    return actual


class Backend(ABC):
    """One model served by one engine. Subclasses implement :meth:`load` and :meth:`predict_proba`.

    ``predict_proba`` is thread-safe and blocking: callers run it off the event loop.
    """

    name: ClassVar[str]
    served_file: ClassVar[str]    # the file whose manifest sha256 is reported as model_sha256

    def __init__(self, *, arch: str, classes: tuple[str, ...], input_spec: InputSpec, sha256: str,
                 params: int, vectorizer=None, load_seconds: float = 0.0) -> None:
        self.arch = arch
        self.classes = classes
        self.input_spec = input_spec
        self.sha256 = sha256
        self.params = params
        self.vectorizer = vectorizer
        self.load_seconds = load_seconds

    @classmethod
    @abstractmethod
    def load(cls, arch_dir: Path, manifest: dict, input_spec: InputSpec, vectorizer=None) -> "Backend":
        """Load and verify the files in ``arch_dir``; raise :class:`BackendLoadError` with a reason."""

    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Network input (N, *input_spec.shape) -> float32 probabilities (N, C), rows summing to 1."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> int32 token ids (N, L), truncated or zero-padded exactly as Keras' TextVectorization."""
        if self.vectorizer is None:
            raise BackendLoadError(f"the {self.arch} model has no text vectorizer")
        return np.asarray(self.vectorizer.transform(list(texts)), dtype=np.int32)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.arch} sha256={self.sha256[:12]} params={self.params}>"


