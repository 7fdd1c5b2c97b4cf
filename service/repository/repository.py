"""The model repository: every sub-folder of ``MODEL_REPOSITORY`` is a model named after the folder, with
optional numbered version sub-folders (TF Serving's convention); the highest *loaded* version is served
unless a request names one.

Loading (start-up, ``load``, ``refresh`` from polling) runs in one thread at a time, off the event loop. A
version is published only once it is completely loaded: the published state is a dict per model replaced
in one assignment, so a request sees the old version or the new one, never a mixture; requests already
holding the old version finish on it, and its backends are handed to ``on_retire`` afterwards (the batch
queues close once idle). A version that fails to load leaves whatever served before serving, and its
reason is shown in /models.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelNotFound, NotReady
from .model import ModelVersion, fingerprint, load_version
from .names import inside, name_problem, parse_version

log = logging.getLogger("service.repository")

DEFAULT_BACKENDS = ("scratch", "keras")
DEFAULT_MAX_BYTES = 2 * 1024**3


class ModelRepository:
    """Maps model name -> version -> :class:`ModelVersion`. ``load_all``, ``load``, ``unload`` and
    ``refresh`` are blocking (run them in a thread); lookups are cheap and never block."""

    def __init__(self, root: Path, backends: tuple[str, ...] = DEFAULT_BACKENDS, *, cache_dir: Path | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.backend_names = tuple(backends)
        self.cache_dir = cache_dir
        self.max_bytes = max_bytes
        self._models: dict[str, dict[int, ModelVersion]] = {}
        self._unloaded: set[str] = set()     # unloaded on request: polling leaves them alone until loaded again
        self._lock = threading.RLock()
        self._done = threading.Event()
        self.loaded = False
        self.load_seconds: float | None = None
        self.generation = 0                  # bumped on every published change (the OpenAPI document follows it)
        self.events: deque[dict] = deque(maxlen=200)
        self.on_retire: list[Callable[[ModelVersion], None]] = []

    # ------------------------------------------------------------------ the folders
    def scan(self) -> dict[str, dict[int, Path] | str]:
        """Model name -> {version: folder}, or the reason the folder cannot be a model."""
        found: dict[str, dict[int, Path] | str] = {}
        try:
            children = sorted(self.root.iterdir())
        except OSError as exc:
            log.warning("model repository unreadable", extra={"fields": {"root": str(self.root), "error": str(exc)}})
            return found
        for child in children:
            if child.name.startswith(".") or not child.is_dir():
                continue
            found[child.name] = self._scan_model(child)
        return found

    def _scan_model(self, folder: Path) -> dict[int, Path] | str:
        problem = name_problem(folder.name)
        if problem:
            return f"invalid model folder name {folder.name!r}: {problem}"
        if not inside(self.root, folder):
            return f"{folder.name} is a symlink leading outside the model repository; refused"
        try:
            versions = {v: d for d in folder.iterdir() if d.is_dir() and (v := parse_version(d.name)) is not None}
        except OSError as exc:
            return f"{folder.name} cannot be read ({exc})"
        return dict(sorted(versions.items())) if versions else {1: folder}

    # ------------------------------------------------------------------ loading
    def load_all(self) -> "ModelRepository":
        """Start-up: every model on disk (the first ones become visible as ``loading`` at once)."""
        t0 = time.perf_counter()
        with self._lock:
            found = self.scan()
            for name, versions in found.items():
                if isinstance(versions, dict) and name not in self._models:
                    self._publish(name, {v: ModelVersion(name, v, path) for v, path in versions.items()})
            for name in found:
                self._load(name, found[name])
        self.load_seconds = time.perf_counter() - t0
        self.loaded = True
        self._done.set()
        log.info("models loaded", extra={"fields": {"load_seconds": round(self.load_seconds, 3), "ready": self.ready,
                                                    "models": sorted(self._models), "root": str(self.root)}})
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def load(self, name: str, force: bool = False) -> dict[int, ModelVersion]:
        """(Re)load ``name`` from disk: new or changed versions are loaded, removed ones unloaded. ``force``:
        also retry versions whose files did not change but failed (say, after installing TensorFlow)."""
        with self._lock:
            self._unloaded.discard(name)
            found = self._scan_model(self.root / name) if (self.root / name).is_dir() else None
            if found is None:
                raise ModelNotFound(f"no folder {name!r} in the model repository", field="model",
                                    reason=f"no folder {name!r} in the model repository",
                                    details={"known": sorted(self.scan())})
            return self._load(name, found, force)

    def _load(self, name: str, found: dict[int, Path] | str, force: bool = False) -> dict[int, ModelVersion]:
        current = self._models.get(name, {})
        if isinstance(found, str):  # not a usable folder: one failed entry carrying the reason
            entry = ModelVersion(name, 1, self.root / name, state="failed", reason=found,
                                 failures={b: found for b in self.backend_names})
            self._replace(name, {1: entry}, current)
            return self._models[name]
        new: dict[int, ModelVersion] = {}
        for version, folder in found.items():
            old = current.get(version)
            if (old is not None and old.state != "loading" and old.fingerprint == fingerprint(folder)
                    and (old.ready or not force)):
                new[version] = old
                continue
            t0 = time.perf_counter()
            entry = load_version(name, version, folder, self.root, self.backend_names, cache_dir=self.cache_dir,
                                 max_bytes=self.max_bytes)
            if not entry.ready and old is not None and old.ready:
                old.reload_error = entry.reason   # the old files keep serving; /models shows why the new did not
                new[version] = old
                self._event(name, version, "reload failed, previous kept", time.perf_counter() - t0, entry.reason)
                continue
            new[version] = entry
            action = "loaded" if old is None or old.state == "loading" else "replaced"
            self._event(name, version, action if entry.ready else "failed", time.perf_counter() - t0, entry.reason)
        self._replace(name, new, current)
        return self._models[name]

    def _replace(self, name: str, new: dict[int, ModelVersion], current: dict[int, ModelVersion]) -> None:
        self._publish(name, new)
        kept = {id(e) for e in new.values()}
        for entry in current.values():
            if id(entry) not in kept:
                self._retire(entry)

    def unload(self, name: str) -> list[ModelVersion]:
        """Stop serving every version of ``name`` (requests in flight finish); polling leaves it unloaded."""
        with self._lock:
            if name not in self._models:
                raise ModelNotFound(f"model {name!r} is not loaded", field="model", reason="not loaded",
                                    details={"loaded": sorted(self._models)})
            self._unloaded.add(name)
            versions = self._models.pop(name)
            self.generation += 1
            for entry in versions.values():
                self._retire(entry)
                self._event(name, entry.version, "unloaded", 0.0, None)
            return list(versions.values())

    def refresh(self) -> None:
        """Polling: load new and changed models and versions, unload the ones whose folders are gone."""
        with self._lock:
            found = self.scan()
            for name, versions in found.items():
                if name not in self._unloaded:
                    self._load(name, versions)
            for name in [n for n in self._models if n not in found]:
                versions = self._models.pop(name)
                self.generation += 1
                for entry in versions.values():
                    self._retire(entry)
                    self._event(name, entry.version, "removed", 0.0, "its folder is gone")

    def poll_forever(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            try:
                self.refresh()
            except Exception:  # polling must go on whatever one pass met
                log.exception("repository poll failed")

    def _publish(self, name: str, versions: dict[int, ModelVersion]) -> None:
        numbers = tuple(sorted(versions))
        for entry in versions.values():
            entry.versions = numbers
        self._models[name] = dict(sorted(versions.items()))   # one assignment: readers see old or new
        self.generation += 1

    def _retire(self, entry: ModelVersion) -> None:
        for callback in self.on_retire:
            try:
                callback(entry)
            except Exception:
                log.exception("retire callback failed")

    def _event(self, name: str, version: int, action: str, seconds: float, reason: str | None) -> None:
        self.events.append({"time": time.time(), "model": name, "version": version, "action": action,
                            "seconds": round(seconds, 3), "reason": reason})
        log.info("repository change", extra={"fields": self.events[-1]})

    # ------------------------------------------------------------------ lookups (event loop, never blocking)
    @property
    def models(self) -> dict[str, dict[int, ModelVersion]]:
        """A snapshot: model name -> version -> entry."""
        return dict(self._models)

    @property
    def entries(self) -> dict[str, ModelVersion]:
        """Model name -> the version served by default."""
        return {name: self._served(versions) for name, versions in self._models.items()}

    @staticmethod
    def _served(versions: dict[int, ModelVersion]) -> ModelVersion:
        ready = [v for v, e in versions.items() if e.ready]
        return versions[max(ready) if ready else max(versions)]

    def get(self, name: str, version: int | str | None = None) -> ModelVersion:
        """The version served for ``name`` (the highest ready one), or the one asked for; 404 otherwise."""
        versions = self._models.get(name)
        if versions is None:
            if not self.loaded and name_problem(name) is None and (self.root / name).is_dir():
                raise NotReady("models are still loading; poll GET /ready", field="model", reason="loading")
            known = sorted(self._models)
            reason = f"unknown model {name!r}; known: {', '.join(known) or 'none'}"
            raise ModelNotFound(reason, field="model", reason=reason, details={"known": known})
        if version is None:
            return self._served(versions)
        number = parse_version(version) if not isinstance(version, int) else version
        if number not in versions:
            reason = f"model {name!r} has no version {version!r}; versions: {', '.join(map(str, versions))}"
            raise ModelNotFound(reason, field="version", reason=reason, details={"versions": list(versions)})
        return versions[number]

    def backend(self, name: str, backend_name: str, version: int | str | None = None):
        entry = self.get(name, version)
        if entry.state == "loading":
            raise NotReady("models are still loading; poll GET /ready", field="backend", reason="loading")
        return entry.backend(backend_name)

    @property
    def ready(self) -> bool:
        """At least one model version loaded, and nothing still loading (every backend loaded or failed
        with a reason)."""
        snapshot = [e for versions in self._models.values() for e in versions.values()]
        return self.loaded and any(e.ready for e in snapshot) and not any(e.state == "loading" for e in snapshot)

    def status(self) -> dict:
        return {name: {b: e.status(b) for b in self.backend_names} for name, e in self.entries.items()}

    def index(self) -> list[dict]:
        """Every model folder and version on disk and in memory, with its state (the repository extension's
        index: ``READY``, ``LOADING``, ``UNAVAILABLE``, ``UNLOADED``)."""
        rows, found, models = [], self.scan(), self.models
        for name in sorted(set(found) | set(models)):
            on_disk = found.get(name)
            if isinstance(on_disk, str):
                rows.append({"name": name, "version": None, "state": "UNAVAILABLE", "reason": on_disk})
                continue
            loaded = models.get(name, {})
            for version in sorted(set(on_disk or {}) | set(loaded)):
                entry = loaded.get(version)
                if entry is None:
                    state, reason = "UNLOADED", ("unloaded on request" if name in self._unloaded
                                                 else "on disk, not loaded yet")
                elif entry.state == "loading":
                    state, reason = "LOADING", None
                elif entry.ready:
                    state, reason = "READY", getattr(entry, "reload_error", None)
                else:
                    state, reason = "UNAVAILABLE", entry.reason
                if on_disk is not None and version not in on_disk:
                    reason = "its folder is gone"
                rows.append({"name": name, "version": version, "state": state, "reason": reason})
        return rows

    def with_entry(self, entry: ModelVersion) -> "ModelRepository":
        """A shallow copy serving ``entry`` as its model's only version (tests wrap a backend this way)."""
        import copy

        other = copy.copy(self)
        other._models = {**self._models, entry.name: {entry.version: entry}}
        return other
