"""Buffers planned ahead: every large array a plan's steps write is taken from an arena and reused.

A forward pass that allocated its activations and scratch buffers afresh on every call paid one page
fault per 4 KiB it touched (glibc hands large blocks back to the kernel on free). An arena keeps one
flat buffer per (step, purpose) key, grown to the largest size asked so far and viewed at the size of
the call, so after the first call of the largest batch nothing large is allocated again. That is the
engine's own, scoped answer to what ``allocator.keep_freed_memory()`` did process-wide.

One arena serves one forward pass of one part at a time: ``Arenas.take()`` lends one out (making one
when all are in use: concurrent ``predict`` calls, or the parts of a split batch) and takes it back.
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np


class Arena:
    """Named, growable buffers: ``get(key, shape, dtype)`` is an uninitialised view of ``shape``."""

    def __init__(self) -> None:
        self._buffers: dict[tuple, np.ndarray] = {}

    def get(self, key, shape: tuple, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = math.prod(shape)  # not np.prod: this runs a few hundred times per forward pass
        buf = self._buffers.get((key, dtype))
        if buf is None or buf.size < size:
            buf = np.empty(max(size, 1), dtype)
            self._buffers[(key, dtype)] = buf
        return buf[:size].reshape(shape)

    def zeros(self, key, shape: tuple, dtype) -> np.ndarray:
        out = self.get(key, shape, dtype)
        out.fill(0)
        return out

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())


class Arenas:
    """A free list of arenas, safe to use from several threads."""

    def __init__(self) -> None:
        self._free: list[Arena] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self):
        with self._lock:
            arena = self._free.pop() if self._free else Arena()
        try:
            yield arena
        finally:
            with self._lock:
                self._free.append(arena)


class Fresh:
    """An arena that allocates every time (for one-off calls outside a plan, e.g. tests)."""

    def get(self, key, shape, dtype):
        return np.empty(shape, dtype)

    def zeros(self, key, shape, dtype):
        return np.zeros(shape, dtype)
