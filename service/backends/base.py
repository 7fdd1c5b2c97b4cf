"""The backend interface: a loaded model that maps a network-input batch to class probabilities.

:class:`InputSpec` says what a model's network takes (any image size and channel count, token ids of any
length, or plain tensors, in float32/float64/int32/int64); :class:`ModelFiles` says where one model version's
files are (its Keras file, its scratch artifact folder) and their recorded checksums.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from scratch_models.io_utils import sha256_file

KINDS = ("image", "text", "tensor")
DTYPES = ("float32", "float64", "int32", "int64")


class BackendLoadError(RuntimeError):
    """A backend could not be loaded; the message is the reason shown to clients (503) and in /models."""


@dataclass(frozen=True)
class InputSpec:
    """What the network takes, without the batch dimension.

    ``image``: float (N, H, W, C) with pixels in ``value_range`` (ours: [0, 1]); any H, W and C.
    ``text``: integer token ids (N, L) in [0, ``vocabulary_size``), 0 = padding; texts need a vectorizer.
    ``tensor``: anything else with a fixed shape (N, *shape), finite numbers of ``dtype``.
    """
    kind: str                                  # "image" | "text" | "tensor"
    shape: tuple[int, ...]                     # without the batch dimension
    dtype: str                                 # one of DTYPES
    sequence_length: int | None = None         # text: L
    vocabulary_size: int | None = None         # text: ids must be < this (None: not known)
    value_range: tuple[float, float] | None = None  # image: e.g. (0.0, 1.0); None: any finite value

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BackendLoadError(f"input kind must be one of {KINDS}, found {self.kind!r}")
        if self.dtype not in DTYPES:
            raise BackendLoadError(f"input dtype must be one of {DTYPES}, found {self.dtype!r}")
        if not self.shape or any((not isinstance(d, int)) or d < 1 for d in self.shape):
            raise BackendLoadError(f"input shape must be fixed positive sizes, found {self.shape!r}")
        if self.kind == "image" and len(self.shape) != 3:
            raise BackendLoadError(f"an image input is (height, width, channels), found {self.shape!r}")
        if self.kind == "text" and (len(self.shape) != 1 or self.sequence_length != self.shape[0]):
            raise BackendLoadError(f"a text input is (sequence_length,), found {self.shape!r}")

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith("int")

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @classmethod
    def from_manifest(cls, spec: dict) -> "InputSpec":
        """A manifest's ``input`` block (ours: kind, shape, dtype, sequence_length, vocabulary_size, range)."""
        if not isinstance(spec, dict):
            raise BackendLoadError(f"manifest input must be an object, found {type(spec).__name__}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise BackendLoadError(f"manifest input.kind must be one of {KINDS}, found {kind!r}")
        try:
            shape = tuple(int(d) for d in spec.get("shape", ()) if d is not None)
        except (TypeError, ValueError):
            raise BackendLoadError(f"manifest input.shape must be a list of sizes, found {spec.get('shape')!r}") from None
        value_range = spec.get("range")
        if kind == "image":
            value_range = tuple(float(v) for v in value_range) if value_range else (0.0, 1.0)
            return cls("image", shape or (32, 32, 3), str(spec.get("dtype", "float32")), value_range=value_range)
        if kind == "text":
            length = spec.get("sequence_length") or (shape[-1] if shape else None)
            if not length:
                raise BackendLoadError("manifest input of a text model names no sequence_length")
            vocab = spec.get("vocabulary_size")
            return cls("text", (int(length),), str(spec.get("dtype", "int32")), int(length),
                       vocabulary_size=int(vocab) if vocab else None)
        return cls("tensor", shape, str(spec.get("dtype", "float32")),
                   value_range=tuple(float(v) for v in value_range) if value_range else None)

    def to_manifest(self) -> dict:
        out = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        if self.kind == "text":
            out["sequence_length"] = self.sequence_length
            out["vocabulary_size"] = self.vocabulary_size
        if self.value_range is not None:
            out["range"] = list(self.value_range)
        return out


@dataclass(frozen=True)
class ModelFiles:
    """One model version's files. ``keras_file`` is what the keras backend loads (our export's model.keras
    or a person's own file), ``artifact_dir`` holds architecture.json + weights.npz (+ vectorizer.json), and
    ``checksums`` maps each file name to the sha256 recorded in the manifest."""
    name: str
    version: int
    manifest: dict
    keras_file: Path | None
    artifact_dir: Path | None
    checksums: dict[str, str] = field(default_factory=dict)
    scratch_reason: str | None = None   # set when conversion found the scratch engine cannot serve it

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("classes", ()))


def verify_file(path: Path, checksums: dict) -> str:
    """The file's sha256, checked against ``checksums[name]`` (a manifest's ``files`` block, or a manifest
    itself, which holds that block); raises :class:`BackendLoadError`."""
    table = checksums.get("files", checksums) if isinstance(checksums.get("files"), dict) else checksums
    expected = table.get(path.name)
    if not path.is_file():
        raise BackendLoadError(f"{path} is missing")
    if not isinstance(expected, str) or not expected:
        raise BackendLoadError(f"manifest.json lists no sha256 for {path.name}")
    actual = sha256_file(path)
    if actual != expected:
        raise BackendLoadError(f"{path.name} is corrupt or tampered with: sha256 {actual[:16]}... differs from "
                               f"the manifest's {expected[:16]}...")
    return actual


class Backend(ABC):
    """One model version served by one engine. Subclasses implement :meth:`load` and :meth:`predict_proba`.

    ``predict_proba`` is thread-safe and blocking: callers run it off the event loop. ``arch`` is the model's
    name (kept under that name for the batcher and the metrics labels), ``version`` its version and
    ``load_id`` a number unique to this load, so that two loads of one name never share a batch queue.
    """

    name: ClassVar[str]
    served_file: ClassVar[str]    # in our export: the file whose manifest sha256 is reported as model_sha256

    def __init__(self, *, arch: str, classes: tuple[str, ...], input_spec: InputSpec, sha256: str,
                 params: int, vectorizer=None, load_seconds: float = 0.0, version: int = 1) -> None:
        self.arch = arch
        self.version = version
        self.classes = classes
        self.input_spec = input_spec
        self.sha256 = sha256
        self.params = params
        self.vectorizer = vectorizer
        self.load_seconds = load_seconds
        self.load_id = 0

    @property
    def model(self) -> str:
        return self.arch

    @classmethod
    @abstractmethod
    def load(cls, files: ModelFiles, input_spec: InputSpec, vectorizer=None) -> "Backend":
        """Load and verify ``files``; raise :class:`BackendLoadError` with a reason."""

    @abstractmethod
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Network input (N, *input_spec.shape) -> float32 probabilities (N, C), rows summing to 1."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> int32 token ids (N, L), truncated or zero-padded exactly as Keras' TextVectorization."""
        if self.vectorizer is None:
            raise BackendLoadError(f"the {self.arch} model has no text vectorizer")
        return np.asarray(self.vectorizer.transform(list(texts)), dtype=np.int32)

    def probe_input(self) -> np.ndarray:
        """A one-item batch of the network's input (ones; id 1 for token ids) to trace and check the output."""
        return np.ones((1, *self.input_spec.shape), dtype=self.input_spec.numpy_dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.arch} v{self.version} sha256={self.sha256[:12]} params={self.params}>"
