"""The one place where a batch meets a backend, off the event loop.

Every forward pass runs in the worker thread of its (arch, backend) queue (:mod:`service.batching`). With
DYNAMIC_BATCHING (the default) the queue merges concurrent requests into one forward pass; without it, each
request is its own forward pass, one at a time per queue. Not the thread pool: 32 concurrent single-item
forward passes in 32 threads fight over the GIL and the cores (cnn/scratch, concurrency 32, one server:
113 req/s, p99 642 ms, against 219 req/s, p99 207 ms, one at a time). Either way the caller gets its own
rows and the size of the forward pass that served it, and a backend failure becomes a JSON error.
"""
from __future__ import annotations

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
    """Runs forward passes for the routes: batched (one queue per arch x backend) or one per request."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.batcher = Batcher(forward, settings.max_batch, settings.batch_wait_ms / 1000, observe=self._observe,
                               merge=settings.dynamic_batching)

    async def predict_proba(self, backend: Backend, batch: np.ndarray) -> BatchResult:
        """(N, ...) network input -> this request's (N, C) probabilities and the batch it was served in."""
        served = await self.batcher.submit(backend, batch)
        if not np.isfinite(served.probs).all():
            raise BackendUnavailable(f"{backend.arch}/{backend.name} returned non-finite probabilities",
                                     field="backend", reason="invalid model output")
        return served

    def _observe(self, backend: Backend, items: int, requests: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(backend.arch, backend.name, items, requests, seconds)

    async def close(self) -> None:
        await self.batcher.close()
