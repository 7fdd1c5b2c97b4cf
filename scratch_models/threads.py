"""BLAS threading for small matrix products.

The recurrence multiplies (N, units) by (units, gates*units) once per time step: far too small to
share between threads. OpenBLAS still wakes its threads for them, and on a busy 2-core machine each
product then costs milliseconds instead of tens of microseconds (measured: 4 ms vs 68 us for
32x64 @ 64x256). ``single_threaded_blas()`` runs such loops on one BLAS thread; it uses threadpoolctl
when installed and does nothing otherwise (results are the same either way).
"""
from __future__ import annotations

import contextlib


_controller = None


@contextlib.contextmanager
def single_threaded_blas():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: NumPy alone still computes the same numbers
            _controller = False
        else:  # finding the BLAS libraries reads /proc: do it once, not per call (~1 ms)
            _controller = ThreadpoolController()
    if not _controller:
        yield
        return
    with _controller.limit(limits=1, user_api="blas"):
        yield
