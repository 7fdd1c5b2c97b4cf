"""BLAS threading for small matrix products.

The recurrence multiplies (N, units) by (units, gates*units) once per time step: far too small to
share between threads. OpenBLAS still wakes its threads for them, and on a busy 2-core machine each
product then costs milliseconds instead of tens of microseconds (reports/engine_speed_notes.md).
``single_threaded_blas()`` runs such loops on one BLAS thread; it uses threadpoolctl
when installed and does nothing otherwise (results are the same either way).

The BLAS thread count is process-wide, and the service runs forward passes in several threads at
once. So the limit is reference-counted: the first thread to enter sets one BLAS thread, the last to
leave restores the original count. (Nested per-thread limits would restore each other's values in
the wrong order and could leave BLAS on one thread for good.)
"""
from __future__ import annotations

import contextlib
import threading

_controller = None
_lock = threading.Lock()
_holders = 0       # threads (or nested calls) inside single_threaded_blas()
_restore: list = []  # (library controller, its thread count) to put back when the last holder leaves


def _blas_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: NumPy alone still computes the same numbers
            _controller = False
        else:  # finding the BLAS libraries reads /proc: do it once, not per call (~1 ms)
            _controller = ThreadpoolController()
    return _controller


def _blas_libraries() -> list:
    controller = _blas_controller()
    return [lib for lib in controller.lib_controllers if lib.user_api == "blas"] if controller else []


@contextlib.contextmanager
def single_threaded_blas():
    """One BLAS thread for the whole process while any caller is inside; the original count after.
    Each library's own get/set calls (microseconds), not threadpoolctl's ``limit()``, which re-reads
    every library's info (~10 us, on every batch-1 forward pass); nothing is set when BLAS already
    runs one thread (the service's ``BLAS_THREADS=1``)."""
    global _holders
    if not _blas_controller():
        yield
        return
    with _lock:
        if _holders == 0:
            for lib in _blas_libraries():
                n = lib.get_num_threads()
                if n != 1:
                    lib.set_num_threads(1)
                    _restore.append((lib, n))
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                while _restore:
                    lib, n = _restore.pop()
                    lib.set_num_threads(n)


def set_blas_threads(n: int) -> bool:
    """From now on, ``n`` BLAS threads for the whole process (the service's ``BLAS_THREADS``); False
    when threadpoolctl is missing and the library's own count stays.

    Why a server wants 1: OpenBLAS' worker threads spin after each product, taking the core that the
    event loop and the other requests need; large batches still use every core, split in threads."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Expected a positive integer number of BLAS threads, received: {n!r}")
    controller = _blas_controller()
    if not controller:
        return False
    controller.limit(limits=n, user_api="blas")  # kept: the limiter is never restored
    return True
