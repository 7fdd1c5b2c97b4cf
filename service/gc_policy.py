"""Keep Python's cyclic garbage collector off the loaded models.

Why: with TensorFlow and the models loaded the process holds ~0.4-1 M tracked objects, and a full collection
walks them all (~150 ms on this machine, every thread stopped). A nested-list image request allocates about
1,060 lists, and with 32 requests in flight enough of them survive two young collections to trigger full
ones every few dozen requests: cnn/scratch nested-list bodies under ``wrk -c32`` on one core ran at 213-250
req/s with p99 300-377 ms, and at 422-510 req/s with p99 133-224 ms once the loaded state was frozen
(3 alternating runs; reports/reliability_wrk.md has the measured table).

``gc.freeze()`` moves every object alive now into a permanent generation that collections skip. Objects
frozen stay frozen, garbage or not, so the state is re-frozen (unfreeze, collect, freeze) after the
repository retires a version: the old version's objects, once its requests are done, are collected then. A
retired version still answering requests at that moment is collected at the next change, so at most the
versions of one change wait that long.
"""
from __future__ import annotations

import gc
import threading
import time


def settle() -> float:
    """Unfreeze, collect everything, freeze what is left; returns the seconds it took."""
    t0 = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - t0


class Freezer:
    """``settle()`` after loading, and once more ``delay_s`` after the last of a burst of ``changed()`` calls
    (a reload retires versions one by one; their last requests finish meanwhile)."""

    def __init__(self, enabled: bool = True, delay_s: float = 2.0) -> None:
        self.enabled, self.delay_s = enabled, delay_s
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.settled = 0  # how many times the state was frozen (tests, logs)

    def settle(self) -> None:
        if self.enabled:
            settle()
            self.settled += 1

    def changed(self, *_args) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay_s, self.settle)
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
