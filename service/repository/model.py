"""One model version as the routes see it (:class:`ModelVersion`), and how a version folder is loaded.

A version is loaded completely (files resolved, checksums verified, every backend loaded and probed) before
the repository publishes it; a failure of one backend leaves the other serving, a failure of the files
leaves the version ``failed`` with the reason.
"""
from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..backends.base import Backend, BackendLoadError, InputSpec, ModelFiles, verify_file
from ..backends.keras_backend import KerasBackend
from ..backends.scratch_backend import ScratchBackend
from ..errors import BackendUnavailable
from .sources import Resolved, resolve

log = logging.getLogger("service.repository")

BACKENDS: dict[str, type[Backend]] = {"scratch": ScratchBackend, "keras": KerasBackend}
_LOAD_IDS = itertools.count(1)


@dataclass
class ModelVersion:
    """A model version: what it takes, its classes, its loaded backends and why any backend is missing.

    ``state``: ``loading`` | ``ready`` (at least one backend) | ``failed`` (none; ``reason`` says why).
    ``versions`` lists every version of this model the repository knows, set by the repository."""
    name: str
    version: int
    path: Path | None = None
    state: str = "loading"
    reason: str | None = None
    manifest: dict | None = None
    input_spec: InputSpec | None = None
    backends: dict[str, Backend] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    vectorizer: object | None = None
    source: str | None = None
    note: str | None = None
    load_seconds: float | None = None
    loaded_at: float | None = None
    fingerprint: tuple = ()
    load_id: int = 0
    versions: tuple[int, ...] = ()
    reload_error: str | None = None   # a newer copy of these files failed to load; this one kept serving

    @property
    def arch(self) -> str:  # the name the first three models were served under
        return self.name

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple((self.manifest or {}).get("classes", ()))

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def request_fields(self) -> tuple[str, ...]:
        """The /predict body fields this version accepts."""
        if self.input_spec is None:
            return ()
        if self.input_spec.kind == "image":
            return ("images", "inputs")
        if self.input_spec.kind == "text" and self.vectorizer is not None:
            return ("texts", "inputs")
        return ("inputs",)

    @property
    def params(self) -> int | None:
        return (self.manifest or {}).get("params") or next((b.params for b in self.backends.values()), None)

    def status(self, backend: str) -> dict:
        if backend in self.backends:
            return {"status": "ready", "reason": None, "load_seconds": round(self.backends[backend].load_seconds, 3)}
        if backend in self.failures:
            return {"status": "unavailable", "reason": self.failures[backend], "load_seconds": None}
        return {"status": "loading" if self.state == "loading" else "unavailable", "reason": self.reason,
                "load_seconds": None}

    def backend(self, name: str) -> Backend:
        if name in self.backends:
            return self.backends[name]
        reason = self.failures.get(name) or self.reason or f"backend {name!r} is not configured"
        raise BackendUnavailable(f"{self.name}/{name} is unavailable: {reason}", field="backend", reason=reason)


def load_vectorizer(path: Path, checksums: dict, spec: InputSpec):
    """The text vectorizer both backends use (``vectorizer.json``, checksum verified): NumPy only."""
    from scratch_models.text import TextVectorizer

    verify_file(path, checksums)
    try:
        vec = TextVectorizer(**json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError) as exc:
        raise BackendLoadError(f"{path.name} is not a valid vectorizer ({exc})") from None
    if vec.output_sequence_length != spec.sequence_length:
        raise BackendLoadError(f"{path.name} pads to {vec.output_sequence_length} tokens, the manifest's "
                               f"sequence_length is {spec.sequence_length}")
    return vec


def fingerprint(folder: Path) -> tuple:
    """What changes when a version folder's files change (names, sizes, modification times)."""
    try:
        return tuple(sorted((p.name, st.st_size, st.st_mtime_ns) for p in folder.iterdir()
                            if not p.name.startswith(".") and p.is_file() for st in [p.stat()]))
    except OSError:
        return ()


def load_version(name: str, version: int, folder: Path, root: Path, backend_names: tuple[str, ...], *,
                 cache_dir: Path | None, max_bytes: int) -> ModelVersion:
    """Blocking (TensorFlow, file reads): a fully loaded :class:`ModelVersion`, ``ready`` or ``failed``."""
    t0 = time.perf_counter()
    entry = ModelVersion(name, version, folder, fingerprint=fingerprint(folder), load_id=next(_LOAD_IDS))
    try:
        resolved: Resolved = resolve(name, version, folder, root, cache_dir=cache_dir, max_bytes=max_bytes)
        entry.manifest, entry.input_spec, entry.source, entry.note = (resolved.files.manifest, resolved.input_spec,
                                                                      resolved.source, resolved.note)
        if resolved.vectorizer_file is not None:
            entry.vectorizer = load_vectorizer(resolved.vectorizer_file, resolved.files.checksums, resolved.input_spec)
            if entry.input_spec.vocabulary_size is None:  # an export whose manifest predates the field
                entry.input_spec = replace(entry.input_spec, vocabulary_size=len(entry.vectorizer.vocabulary))
    except BackendLoadError as exc:
        return _failed(entry, str(exc), backend_names, t0)
    except Exception as exc:  # an isolation boundary: a bad folder never stops the service
        log.exception("model folder failed", extra={"fields": {"model": name, "version": version}})
        return _failed(entry, f"{type(exc).__name__}: {exc}", backend_names, t0)
    for backend_name in backend_names:
        try:
            backend = BACKENDS[backend_name].load(resolved.files, entry.input_spec, vectorizer=entry.vectorizer)
        except Exception as exc:  # one backend's failure must not stop the others
            reason = str(exc) if isinstance(exc, BackendLoadError) else f"{type(exc).__name__}: {exc}"
            entry.failures[backend_name] = reason
            log.warning("backend unavailable", extra={"fields": {"model": name, "version": version,
                                                                 "backend": backend_name, "reason": reason}})
            continue
        backend.load_id = entry.load_id
        entry.backends[backend_name] = backend
        log.info("backend loaded", extra={"fields": {"model": name, "version": version, "backend": backend_name,
                                                     "sha256": backend.sha256,
                                                     "load_seconds": round(backend.load_seconds, 3)}})
    entry.load_seconds = time.perf_counter() - t0
    entry.loaded_at = time.time()
    if entry.backends:
        entry.state = "ready"
    else:
        entry.state = "failed"
        entry.reason = "; ".join(f"{b}: {r}" for b, r in entry.failures.items()) or "no backend configured"
    return entry


def _failed(entry: ModelVersion, reason: str, backend_names: tuple[str, ...], t0: float) -> ModelVersion:
    entry.state, entry.reason = "failed", reason
    entry.failures = {b: reason for b in backend_names}
    entry.load_seconds = time.perf_counter() - t0
    entry.loaded_at = time.time()
    log.warning("model version unavailable", extra={"fields": {"model": entry.name, "version": entry.version,
                                                               "reason": reason}})
    return entry


def loading_entry(name: str, version: int, folder: Path | None) -> ModelVersion:
    return ModelVersion(name, version, folder)
