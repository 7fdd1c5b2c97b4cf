"""Run independent parts of an inference batch on all cores, in threads.

NumPy releases the GIL inside its element-wise loops and matrix products, so threads over
disjoint row ranges of a batch run truly in parallel. ``SCRATCH_MODELS_THREADS`` caps the number of
parts (default: the cores this process may use; 1 turns the splitting off).
"""
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_pool: ThreadPoolExecutor | None = None
THREAD_NAME_PREFIX = "scratch-models"
_splitting = threading.local()  # .active: this thread is computing the first part of a map_parts


def cores() -> int:
    """Parts a batch may be split into: ``SCRATCH_MODELS_THREADS``, else the usable cores."""
    value = os.environ.get("SCRATCH_MODELS_THREADS")
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"Expected a positive integer in SCRATCH_MODELS_THREADS, received: {value!r}") from None
        if n < 1:
            raise ValueError(f"Expected a positive integer in SCRATCH_MODELS_THREADS, received: {value!r}")
        return n
    return _usable_cores()


@functools.lru_cache(maxsize=1)
def _usable_cores() -> int:
    """The cores this process may use (read once: ``sched_getaffinity`` costs milliseconds on a busy host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def in_worker() -> bool:
    """True while computing a part: in one of the pool's threads, or in the caller of ``map_parts``
    computing its own first part. A part of a part would wait for that same (busy) pool, and the
    cores are already taken: code that would split again runs whole instead."""
    return getattr(_splitting, "active", False) or threading.current_thread().name.startswith(THREAD_NAME_PREFIX)


def map_parts(fn: Callable[[np.ndarray], np.ndarray], parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[fn(p) for p in parts]``, the first part in the calling thread and the others in the pool;
    all in the calling thread when that is one of the pool's own (its siblings hold the pool)."""
    global _pool
    if in_worker():
        return [fn(p) for p in parts]
    if _pool is None:
        _pool = ThreadPoolExecutor(max(1, cores() - 1), thread_name_prefix=THREAD_NAME_PREFIX)
    futures = [_pool.submit(fn, p) for p in parts[1:]]
    _splitting.active = True
    try:
        first = fn(parts[0])
    finally:
        _splitting.active = False
    return [first, *(f.result() for f in futures)]
