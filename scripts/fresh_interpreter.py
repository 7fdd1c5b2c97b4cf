#!/usr/bin/env python
"""Run one function call in a fresh Python interpreter that dies with the thread that started it.

Why (issue 20): a study run executed inside a Dask worker shares Python's global ``random`` with the
worker's event-loop thread, which draws from it at unpredictable moments (``dask.sizeof`` samples
the items of every message the worker sends: heartbeats, metrics) while Keras takes its default
seeds for initialisers and dropout (``keras.random.make_default_seed``) from the same generator.
So runs on workers did not repeat. In a child interpreter of its own a run sees only its own draws
and repeats the sequential run bit for bit.

The child asks Linux to SIGKILL it when its parent thread dies (``prctl(PR_SET_PDEATHSIG)``), so
a worker killed mid-task leaves no orphan training behind; the caller blocks in ``wait`` for the
whole call, so that thread lives as long as the child. Elsewhere than Linux there is no such
guarantee.

    value = call("study", "run_one", {"arch": "rnn", "variant": "base", ...})   # JSON in, JSON out

The request and the answer travel as JSON files in a temporary folder; the child's stdout and
stderr are the caller's (training progress goes to the worker's log as before).
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ChildCallError(RuntimeError):
    """The call raised in the child, or the child died (killed, crashed) before answering."""


def call(module: str, function: str, kwargs: dict, sys_path=(str(ROOT), str(ROOT / "scripts"))):
    """``module.function(**kwargs)`` in a new ``sys.executable``; returns its (JSON) result.

    Raises ``ChildCallError`` naming the exception the child raised, or its exit status.
    """
    with tempfile.TemporaryDirectory(prefix="fresh-interpreter-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        request.write_text(json.dumps({"module": module, "function": function, "kwargs": kwargs,
                                       "sys_path": list(sys_path)}))
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(request), str(answer),
                                  str(os.getpid())], stdin=subprocess.DEVNULL)
        try:
            status = child.wait()
        finally:
            if child.poll() is None:  # this thread was interrupted: do not leave the child running
                child.kill()
                child.wait()
        if not answer.is_file():
            how = (f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}")
            raise ChildCallError(f"{module}.{function} in a fresh interpreter (pid {child.pid}) {how} "
                                 "before answering")
        reply = json.loads(answer.read_text())
    if not reply["ok"]:
        raise ChildCallError(f"{module}.{function} in a fresh interpreter (pid {child.pid}) raised "
                             f"{reply['error']}\n{reply['traceback']}")
    return reply["value"]


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent thread exits (Linux); exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def child_main(request_path: str, answer_path: str, parent_pid: str) -> int:
    die_with_parent(int(parent_pid))
    request = json.loads(Path(request_path).read_text())
    sys.path[:0] = request["sys_path"]
    from scratch_models.io_utils import atomic_write_json

    try:
        import importlib
        value = getattr(importlib.import_module(request["module"]), request["function"])(**request["kwargs"])
        reply = {"ok": True, "value": value}
    except Exception as exc:  # noqa: BLE001 -- handed to the caller, which raises it
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    atomic_write_json(Path(answer_path), reply)
    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    sys.exit(child_main(*sys.argv[1:]))
