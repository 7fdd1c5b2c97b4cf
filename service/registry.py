"""The model registry: arch -> its manifest and its loaded backends (or why each one is unavailable).

A backend that fails to load (TensorFlow missing, a corrupt or tampered file, an engine error) makes only
that arch x backend unavailable; every other one keeps serving.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import Backend, BackendLoadError, InputSpec, verify_file
from .backends.keras_backend import KerasBackend
from .backends.scratch_backend import ScratchBackend
from .errors import BackendUnavailable, ModelNotFound, NotReady

log = logging.getLogger("service.registry")

ARCHS = ("cnn", "rnn", "lstm")
ARCH_KINDS = {"cnn": "image", "rnn": "text", "lstm": "text"}
BACKENDS: dict[str, type[Backend]] = {"scratch": ScratchBackend, "keras": KerasBackend}


@dataclass
class ArchEntry:
    """One architecture: its manifest, input spec, loaded backends and load failures."""
    arch: str
    manifest: dict | None = None
    input_spec: InputSpec | None = None
    backends: dict[str, Backend] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple((self.manifest or {}).get("classes", ()))

    def status(self, backend: str, loaded: bool) -> dict:
        if backend in self.backends:
            return {"status": "ready", "reason": None, "load_seconds": round(self.backends[backend].load_seconds, 3)}
        if backend in self.failures:
            return {"status": "unavailable", "reason": self.failures[backend], "load_seconds": None}
        return {"status": "loading" if not loaded else "unavailable", "reason": None, "load_seconds": None}


def read_manifest(arch_dir: Path, arch: str) -> tuple[dict, InputSpec]:
    path = arch_dir / "manifest.json"
    if not path.is_file():
        raise BackendLoadError(f"{path} not found (no weights published for {arch})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendLoadError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("arch") != arch:
        raise BackendLoadError(f"{path} is for arch {manifest.get('arch') if isinstance(manifest, dict) else None!r}, "
                               f"expected {arch!r}")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise BackendLoadError(f"{path}: 'classes' must be a list of at least two names")
    spec = InputSpec.from_manifest(manifest.get("input") or {})
    if spec.kind != ARCH_KINDS[arch]:
        raise BackendLoadError(f"{path}: input.kind is {spec.kind!r}, {arch} takes {ARCH_KINDS[arch]!r}")
    return manifest, spec


def load_vectorizer(arch_dir: Path, manifest: dict, spec: InputSpec):
    """The text vectorizer both backends use (``vectorizer.json``, checksum verified): NumPy only."""
    from scratch_models.text import TextVectorizer

    path = arch_dir / "vectorizer.json"
    if (manifest.get("files") or {}).get(path.name):
        verify_file(path, manifest)
    else:  # the manifest predates the file list entry: use the checksum the scratch artifact records
        try:
            recorded = json.loads((arch_dir / "architecture.json").read_text("utf-8"))["vectorizer"]["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendLoadError(f"no checksum for {path.name} in manifest.json or architecture.json ({exc})") from None
        verify_file(path, {"files": {path.name: recorded}})
    try:
        vec = TextVectorizer(**json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError) as exc:
        raise BackendLoadError(f"{path.name} is not a valid vectorizer ({exc})") from None
    if vec.output_sequence_length != spec.sequence_length:
        raise BackendLoadError(f"{path.name} pads to {vec.output_sequence_length} tokens, the manifest's "
                               f"sequence_length is {spec.sequence_length}")
    return vec


class ModelRegistry:
    """Maps arch -> :class:`ArchEntry`. ``load_all`` is blocking (run it in a thread); lookups are cheap."""

    def __init__(self, weights_dir: Path, backends: tuple[str, ...] = ("scratch", "keras")) -> None:
        self.weights_dir = Path(weights_dir)
        self.backend_names = backends
        self.entries: dict[str, ArchEntry] = {arch: ArchEntry(arch) for arch in ARCHS}
        self.loaded = False
        self.load_seconds: float | None = None
        self._done = threading.Event()

    # ------------------------------------------------------------------ loading
    def load_all(self) -> "ModelRegistry":
        t0 = time.perf_counter()
        for arch in ARCHS:
            self.entries[arch] = self._load_arch(arch)
        self.load_seconds = time.perf_counter() - t0
        self.loaded = True
        self._done.set()
        log.info("models loaded", extra={"fields": {"load_seconds": round(self.load_seconds, 3), "ready": self.ready,
                                                    "weights_dir": str(self.weights_dir)}})
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def _load_arch(self, arch: str) -> ArchEntry:
        entry = ArchEntry(arch)
        arch_dir = self.weights_dir / arch
        try:
            entry.manifest, entry.input_spec = read_manifest(arch_dir, arch)
        except BackendLoadError as exc:
            entry.failures = {b: str(exc) for b in self.backend_names}
            log.warning("arch unavailable", extra={"fields": {"arch": arch, "reason": str(exc)}})
            return entry
        vectorizer = None
        if entry.input_spec.kind == "text":
            try:
                vectorizer = load_vectorizer(arch_dir, entry.manifest, entry.input_spec)
            except BackendLoadError as exc:
                entry.failures = {b: str(exc) for b in self.backend_names}
                log.warning("arch unavailable", extra={"fields": {"arch": arch, "reason": str(exc)}})
                return entry
        for name in self.backend_names:
            try:
                backend = BACKENDS[name].load(arch_dir, entry.manifest, entry.input_spec, vectorizer=vectorizer)
            except Exception as exc:  # an isolation boundary: one backend's failure must not stop the others
                reason = str(exc) if isinstance(exc, BackendLoadError) else f"{type(exc).__name__}: {exc}"
                entry.failures[name] = reason
                log.warning("backend unavailable", extra={"fields": {"arch": arch, "backend": name, "reason": reason}})
                continue
            entry.backends[name] = backend
            log.info("backend loaded", extra={"fields": {"arch": arch, "backend": name, "sha256": backend.sha256,
                                                         "load_seconds": round(backend.load_seconds, 3)}})
        return entry

    # ------------------------------------------------------------------ lookups
    @property
    def ready(self) -> bool:
        return self.loaded and all(name in e.backends for e in self.entries.values() for name in self.backend_names)

    def get(self, arch: str) -> ArchEntry:
        if arch not in self.entries:
            reason = f"unknown arch {arch!r}; known: {', '.join(ARCHS)}"
            raise ModelNotFound(reason, field="arch", reason=reason, details={"known": list(ARCHS)})
        return self.entries[arch]

    def backend(self, arch: str, name: str) -> Backend:
        entry = self.get(arch)
        if name in entry.backends:
            return entry.backends[name]
        if not self.loaded:
            raise NotReady("models are still loading; poll GET /ready", field="backend", reason="loading")
        reason = entry.failures.get(name, f"backend {name!r} is not configured")
        raise BackendUnavailable(f"{arch}/{name} is unavailable: {reason}", field="backend", reason=reason)

    def status(self) -> dict:
        return {arch: {name: e.status(name, self.loaded) for name in self.backend_names}
                for arch, e in self.entries.items()}
