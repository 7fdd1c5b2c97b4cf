"""BLAS threading for small matrix products.

The recurrence multiplies (N, units) by (units, gates*units) once per time step: far too small to
share between threads. OpenBLAS still wakes its threads for them, and on a busy 2-core machine each
product then costs milliseconds instead of tens of microseconds (measured: 4 ms vs 68 us for
32x64 @ 64x256). ``single_threaded_blas()`` runs such loops on one BLAS thread; it uses threadpoolctl
when installed and does nothing otherwise (results are the same either way).
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: NumPy alone still computes the same numbers
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
