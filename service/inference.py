"""The one place where a batch meets a backend, off the event loop.

Every forward pass runs in the worker thread of its (arch, backend) queue (:mod:`service.batching`). With
DYNAMIC_BATCHING (the default) the queue merges concurrent requests into one forward pass; without it, each
request is its own forward pass, one at a time per queue. Not the thread pool: 32 concurrent single-item
forward passes in 32 threads fight over the GIL and the cores (cnn/scratch, concurrency 32, one server:
113 req/s, p99 642 ms, against 219 req/s, p99 207 ms, one at a time). Either way the caller gets its own
rows and the size of the forward pass that served it, and a backend failure becomes a JSON error.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np

from .backends.base import Backend
from .batching import Batcher, BatchResult
from .errors import BackendUnavailable, InferenceFailed, ServiceError
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger("service.inference")


def forward(backend: Backend, batch: np.ndarray) -> np.ndarray:
    """Blocking (call it from a worker thread): network input (N, ...) -> probabilities (N, C).

    A backend exception becomes :class:`InferenceFailed` (500, JSON body); an output of the wrong shape
    :class:`BackendUnavailable` (503)."""
    try:
        probs = np.asarray(backend.predict_proba(batch))
    except ServiceError:
        raise
    except Exception as exc:
        log.error("inference failed", exc_info=True, extra={"fields": {
            "arch": backend.arch, "backend": backend.name, "items": len(batch)}})
        reason = f"{type(exc).__name__}: {exc}"
        raise InferenceFailed(f"{backend.arch}/{backend.name} failed on a batch of {len(batch)}: {reason}",
                              field="backend", reason=reason) from None
    if probs.shape != (len(batch), len(backend.classes)):
        raise BackendUnavailable(f"{backend.arch}/{backend.name} returned an invalid output of shape {probs.shape}",
                                 field="backend", reason="invalid model output")
    return probs


class Inference:
    """Runs forward passes for the routes: batched (one queue per model version x backend) or one per request.

    Each load of a model (``backend.load_id``) gets batch queues of its own, so a request holding the old
    version of a hot-swapped model is computed by that version; :meth:`retire` closes a load's queues once
    the requests in flight on it are answered."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._settings = settings
        self.batcher = self._new_batcher()          # backends built outside the repository (load_id 0)
        self._batchers: dict[int, Batcher] = {}
        self._inflight: dict[int, int] = {}
        self._retired: set[int] = set()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def _new_batcher(self) -> Batcher:
        s = self._settings
        return Batcher(forward, s.max_batch, s.batch_wait_ms / 1000, observe=self._observe, merge=s.dynamic_batching)

    def batcher_for(self, backend: Backend) -> Batcher:
        key = getattr(backend, "load_id", 0)
        if not key:
            return self.batcher
        if key not in self._batchers:
            self._batchers[key] = self._new_batcher()
        return self._batchers[key]

    def queue(self, backend: Backend):
        """The batch queue ``backend``'s requests go through (created on first use)."""
        return self.batcher_for(backend).queue(backend)

    async def predict_proba(self, backend: Backend, batch: np.ndarray) -> BatchResult:
        """(N, ...) network input -> this request's (N, C) probabilities and the batch it was served in."""
        key = getattr(backend, "load_id", 0)
        self._inflight[key] = self._inflight.get(key, 0) + 1
        try:
            served = await self.batcher_for(backend).submit(backend, batch)
        finally:
            self._inflight[key] -= 1
            if key in self._retired and not self._inflight[key]:
                asyncio.get_running_loop().create_task(self._close(key))
        if not np.isfinite(served.probs).all():
            raise BackendUnavailable(f"{backend.arch}/{backend.name} returned non-finite probabilities",
                                     field="backend", reason="invalid model output")
        return served

    def retire(self, load_id: int) -> None:
        """(On the event loop.) A load was replaced or unloaded: close its queues once nothing is in flight."""
        if not load_id:
            return
        self._retired.add(load_id)
        if not self._inflight.get(load_id) and load_id in self._batchers:
            asyncio.get_running_loop().create_task(self._close(load_id))

    def retire_threadsafe(self, load_id: int) -> None:
        """:meth:`retire` from another thread (the repository's loader)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.retire, load_id)

    async def _close(self, load_id: int) -> None:
        if self._inflight.get(load_id):
            return
        self._inflight.pop(load_id, None)
        batcher = self._batchers.pop(load_id, None)
        if batcher is not None:
            await batcher.close()

    def _observe(self, backend: Backend, items: int, requests: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(backend.arch, backend.name, items, requests, seconds)

    async def close(self) -> None:
        await asyncio.gather(self.batcher.close(), *(b.close() for b in self._batchers.values()))
        self._batchers.clear()
