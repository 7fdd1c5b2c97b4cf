"""Functions that tests/study/test_fresh_interpreter.py runs in a child interpreter."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path


def draws_after_seeding(seed: int, n: int) -> dict:
    """What the global ``random`` yields after ``random.seed(seed)``, and the process that drew it."""
    random.seed(seed)
    return {"draws": [random.randint(1, 10**9) for _ in range(n)], "pid": os.getpid()}


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def exit_abruptly(status: int) -> None:
    os._exit(status)


def write_pid_and_sleep(path: str, seconds: float) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
