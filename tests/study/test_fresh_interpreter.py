"""scripts/fresh_interpreter.py: a call in a child interpreter returns its JSON value, reports the
child's exception or death, and the child dies with its parent (the study's runs on Dask workers
train this way, issue 20)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "scripts"))
import fresh_interpreter  # noqa: E402

PATH = (str(ROOT), str(ROOT / "scripts"), str(HERE))


def test_the_call_runs_in_another_process_with_its_own_global_random():
    random.seed(7)
    expected = [random.randint(1, 10**9) for _ in range(5)]  # the reference: this process, same seed
    random.seed(99)
    got = fresh_interpreter.call("child_targets", "draws_after_seeding", {"seed": 7, "n": 5}, sys_path=PATH)
    assert got["draws"] == expected
    assert got["pid"] != os.getpid()


def test_an_exception_in_the_child_is_raised_with_its_type_and_message():
    with pytest.raises(fresh_interpreter.ChildCallError, match=r"raised ValueError: no such variant 'x'"):
        fresh_interpreter.call("child_targets", "raise_value_error", {"message": "no such variant 'x'"}, sys_path=PATH)


def test_a_child_that_dies_without_answering_is_reported_with_its_status():
    with pytest.raises(fresh_interpreter.ChildCallError, match="exited with status 3 before answering"):
        fresh_interpreter.call("child_targets", "exit_abruptly", {"status": 3}, sys_path=PATH)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_child_is_killed_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); import fresh_interpreter as f; "
        "f.call('child_targets', 'write_pid_and_sleep', {'path': sys.argv[2], 'seconds': 120}, "
        "sys_path=sys.argv[3].split(':'))"), str(ROOT / "scripts"), str(pid_file), ":".join(PATH)])
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "the child never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert running(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    while running(child):
        assert time.monotonic() < deadline, f"child {child} outlived its killed parent"
        time.sleep(0.05)


def running(pid: int) -> bool:
    """The process exists and is not merely an unreaped zombie."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
