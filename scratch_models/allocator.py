"""Keep large freed buffers in the process heap, so that a forward pass does not page-fault its way
through fresh memory every call.

Why: glibc serves every allocation above its mmap threshold (128 KiB, adapting up to 32 MiB) with
new pages from the kernel and returns them on free. A forward pass allocates its activations and
im2col buffers anew each call, so each call pays one page fault per 4 KiB it touches. Raising the
mmap threshold and the trim threshold lets freed blocks be reused instead (measurements:
reports/engine_speed_notes.md). The cost: the process keeps its peak working set instead of returning it to the OS.

Process-wide and opt-in: the service calls it at start-up (setting ``KEEP_FREED_MEMORY``). The
scratch engine no longer needs it: ``Model.predict``'s plan keeps its own buffers across calls
(scratch_models/inference/memory.py), scoped to the model. Only glibc (Linux) has ``mallopt``;
elsewhere this does nothing and says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 << 20  # above the served CNN's largest activation (256 x 32x32x32 float32 = 32 MiB)
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds; True when both were accepted."""
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"Expected a positive integer for `{name}`, received: {value!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, min(mmap_threshold, 2**31 - 1))) and \
        bool(mallopt(M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)))
