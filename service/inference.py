"""The one place where a batch meets a backend, off the event loop.

Server-side dynamic batching (issue 7) plugs in here: a per-(arch, backend) queue that merges concurrent
calls into one ``predict_proba`` of up to MAX_BATCH items or BATCH_WAIT_MS, then splits the result.
"""
from __future__ import annotations

import numpy as np
from starlette.concurrency import run_in_threadpool

from .backends.base import Backend
from .errors import BackendUnavailable


async def predict_proba(backend: Backend, batch: np.ndarray) -> np.ndarray:
    """(N, ...) network input -> (N, C) probabilities, computed in a worker thread."""
    probs = await run_in_threadpool(backend.predict_proba, batch)
    if probs.shape != (len(batch), len(backend.classes)) or not np.isfinite(probs).all():
        raise BackendUnavailable(f"{backend.arch}/{backend.name} returned an invalid output of shape {probs.shape}",
                                 field="backend", reason="invalid model output")
    return probs
