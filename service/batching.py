"""Server-side dynamic batching: concurrent requests for one (arch, backend) merged into one forward pass.

Each (arch, backend) has a queue and one worker thread. Batching is never slower than no batching: an idle
worker runs the first request at once, and the requests that arrive while a forward pass computes form the
next batch (everything queued, up to ``max_items`` items). At low load a request never waits for company; under
load, batches grow by themselves to what accumulates during one pass. Only a configured ``wait_s > 0``
(BATCH_WAIT_MS) holds an opening batch for more requests, until ``max_items`` items are queued or ``wait_s``
after its first request, whichever comes first. With ``merge=False`` (DYNAMIC_BATCHING=false) the same queue
and worker serve one request per forward pass, in arrival order, without waiting. The merged output is split
back by row ranges, in the order the requests were merged, so each request gets exactly its own rows.

A merged batch that fails is re-run request by request: a request's outcome never depends on the requests
it happened to be merged with. Every request taken from the queue is answered (a result or an exception),
whatever happens to its batch.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .backends.base import Backend
from .errors import InferenceFailed, NotReady

log = logging.getLogger("service.batching")

Forward = Callable[[Backend, np.ndarray], np.ndarray]
"""Blocking: network input (N, ...) -> probabilities (N, C). Runs in the queue's worker thread."""
Observer = Callable[[Backend, int, int, float], None]
"""Called once per forward pass with (backend, items, requests merged, seconds)."""


@dataclass(frozen=True)
class BatchResult:
    """One request's share of a forward pass."""
    probs: np.ndarray   # (n, C): this request's rows, in its own item order
    batch_size: int     # items in the forward pass that served it
    requests: int       # requests merged into that forward pass


@dataclass
class _Pending:
    batch: np.ndarray
    future: asyncio.Future
    arrived: float = field(default=0.0)


class BatchQueue:
    """The queue and worker of one (arch, backend). Create it inside the running event loop."""

    def __init__(self, backend: Backend, forward: Forward, max_items: int, wait_s: float,
                 observe: Observer | None = None, merge: bool = True) -> None:
        if max_items < 1:
            raise ValueError(f"Expected a positive integer for `max_items`, received: {max_items}")
        if wait_s < 0:
            raise ValueError(f"Expected a non-negative number for `wait_s`, received: {wait_s}")
        self.backend, self.forward, self.max_items, self.wait_s = backend, forward, max_items, wait_s
        self.observe, self.merge = observe, merge
        self._loop = asyncio.get_running_loop()
        self._pending: deque[_Pending] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{backend.arch}-{backend.name}")
        self._task = self._start()

    def _start(self) -> asyncio.Task:
        return self._loop.create_task(self._run(), name=f"batcher-{self.backend.arch}-{self.backend.name}")

    @property
    def queued_items(self) -> int:
        """Items waiting for a forward pass (not counting the one computing)."""
        return self._queued

    async def submit(self, batch: np.ndarray) -> BatchResult:
        """Queue ``batch`` (at most ``max_items`` items) and wait for its rows of a forward pass."""
        if self._closed:
            raise NotReady("the service is shutting down", field="backend", reason="shutting down")
        if not 1 <= len(batch) <= self.max_items:
            raise ValueError(f"a request holds 1..{self.max_items} items, received {len(batch)}")
        if self._task.done():  # the worker must never stop; if a bug stopped it, say so and start a new one
            log.error("batch worker had stopped; restarting it", extra={"fields": {
                "arch": self.backend.arch, "backend": self.backend.name}})
            self._task = self._start()
        pending = _Pending(batch, self._loop.create_future(), self._loop.time())
        self._pending.append(pending)
        self._queued += len(batch)
        self._wakeup.set()
        return await pending.future

    async def _run(self) -> None:
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.merge and self.wait_s > 0:  # only a configured wait holds the batch open
                await self._gather_until(self._pending[0].arrived + self.wait_s)
            try:
                await self._serve(self._take())
            except Exception:  # e.g. the observer; the batch's requests were answered by _serve's finally
                log.exception("batch worker error", extra={"fields": {"arch": self.backend.arch,
                                                                       "backend": self.backend.name}})

    async def _gather_until(self, deadline: float) -> None:
        """Wait for more requests until ``deadline`` (loop time) or until ``max_items`` items are queued."""
        while self._queued < self.max_items and (remaining := deadline - self._loop.time()) > 0:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break

    def _take(self) -> list[_Pending]:
        """The oldest requests holding at most ``max_items`` items together (at least one request; exactly
        one without ``merge``)."""
        group, items = [], 0
        while self._pending:
            head = self._pending[0]
            if not head.future.done() and group and (not self.merge or items + len(head.batch) > self.max_items):
                break
            self._pending.popleft()
            self._queued -= len(head.batch)
            if head.future.done():  # its client went away
                continue
            group.append(head)
            items += len(head.batch)
        return group

    async def _serve(self, group: list[_Pending]) -> None:
        try:
            if not group:
                return
            batch = group[0].batch if len(group) == 1 else np.concatenate([p.batch for p in group])
            t0 = time.perf_counter()
            try:
                probs = await self._loop.run_in_executor(self._executor, self.forward, self.backend, batch)
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0], exc=exc)
                    return
                log.warning("merged batch failed; serving its requests one by one", extra={"fields": {
                    "arch": self.backend.arch, "backend": self.backend.name, "requests": len(group),
                    "items": len(batch), "error": f"{type(exc).__name__}: {exc}"}})
                for p in group:
                    await self._serve([p])
                return
            if self.observe is not None:
                self.observe(self.backend, len(batch), len(group), time.perf_counter() - t0)
            start = 0
            for p in group:
                _settle(p, result=BatchResult(probs[start:start + len(p.batch)], len(batch), len(group)))
                start += len(p.batch)
        finally:  # whatever went wrong above (a bug, a cancellation), no request is left waiting
            for p in group:
                _settle(p, exc=InferenceFailed(f"{self.backend.arch}/{self.backend.name}: the batch was abandoned",
                                               field="backend", reason="batch abandoned"))

    async def close(self) -> None:
        """Stop the worker, answer every waiting request with a 503, release the thread."""
        self._closed = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        while self._pending:
            _settle(self._pending.popleft(), exc=NotReady("the service is shutting down", field="backend",
                                                          reason="shutting down"))
        self._queued = 0
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(pending: _Pending, result: BatchResult | None = None, exc: BaseException | None = None) -> None:
    if pending.future.done():
        return
    if exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)


class Batcher:
    """One :class:`BatchQueue` per (arch, backend), created on first use."""

    def __init__(self, forward: Forward, max_items: int, wait_s: float, observe: Observer | None = None,
                 merge: bool = True) -> None:
        self.forward, self.max_items, self.wait_s, self.observe, self.merge = forward, max_items, wait_s, observe, merge
        self.queues: dict[tuple[str, str], BatchQueue] = {}

    def queue(self, backend: Backend) -> BatchQueue:
        key = (backend.arch, backend.name)
        if key not in self.queues:
            self.queues[key] = BatchQueue(backend, self.forward, self.max_items, self.wait_s, self.observe, self.merge)
        return self.queues[key]

    async def submit(self, backend: Backend, batch: np.ndarray) -> BatchResult:
        return await self.queue(backend).submit(batch)

    async def close(self) -> None:
        await asyncio.gather(*(q.close() for q in self.queues.values()))
        self.queues.clear()
