"""single_threaded_blas(): one BLAS thread while any caller is inside, the original count after, even
when callers in different threads enter and leave out of order (the service runs forward passes in
several threads at once).

Each check runs in a fresh interpreter: OpenBLAS' thread count is process state that other tests
change, and OpenBLAS 0.3.31 reads it back per thread in ways that depend on that history."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")

PRELUDE = textwrap.dedent("""
    import json, threading
    import numpy as np, threadpoolctl
    from scratch_models.threads import single_threaded_blas

    def blas_threads():
        np.ones((2, 2)) @ np.ones((2, 2))
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
""")


def run(body: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_single_thread_inside_and_original_count_after():
    seen = run("""
        seen = {"before": blas_threads()}
        def worker():
            with single_threaded_blas():
                seen["inside"] = blas_threads()
                with single_threaded_blas():
                    seen["nested"] = blas_threads()
                seen["after nested"] = blas_threads()
            seen["after"] = blas_threads()
        t = threading.Thread(target=worker); t.start(); t.join()
        print(json.dumps(seen))
    """)
    if seen["before"] == [1]:
        pytest.skip("BLAS runs on one thread here: nothing to limit")
    assert seen["inside"] == seen["nested"] == seen["after nested"] == [1]
    assert seen["after"] == seen["before"]


def test_overlapping_callers_in_two_threads_restore_the_original_count():
    """A enters, B enters, A leaves (B still inside: still 1 thread), B leaves (back to the original).
    With a plain per-call limit, B saves A's 1 and restores it at the end: BLAS stuck on one thread;
    and A's exit restores the original count while B still runs its small products."""
    seen = run("""
        a_in, b_in, a_out, b_may_leave = (threading.Event() for _ in range(4))
        seen = {"before": blas_threads()}
        def a():
            with single_threaded_blas():
                a_in.set()
                b_in.wait(10)
            seen["A left, B inside"] = blas_threads()
            a_out.set()
        def b():
            a_in.wait(10)
            with single_threaded_blas():
                b_in.set()
                a_out.wait(10)
                b_may_leave.wait(10)
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        a_out.wait(10)
        b_may_leave.set()
        for t in threads:
            t.join(10)
        def after():
            seen["both left"] = blas_threads()
        t = threading.Thread(target=after); t.start(); t.join()
        print(json.dumps(seen))
    """)
    if seen["before"] == [1]:
        pytest.skip("BLAS runs on one thread here: nothing to limit")
    assert seen["A left, B inside"] == [1]
    assert seen["both left"] == seen["before"]
