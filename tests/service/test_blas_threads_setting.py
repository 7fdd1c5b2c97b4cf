"""BLAS_THREADS: the service sets the process' BLAS thread count at start-up (default 1), or leaves the
library's own count with 0. Run in fresh interpreters: the count is process-wide state."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("threadpoolctl")
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, tempfile, threadpoolctl
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import Settings

def count():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

before = count()
with TestClient(create_app(Settings(weights_dir=tempfile.mkdtemp()))) as client:  # no models: start-up only
    health = client.get("/health").status_code
    inside = count()
print(json.dumps({"before": before, "inside": inside, "health": health}))
"""


def run(env: dict) -> dict:
    full = {k: v for k, v in os.environ.items() if k != "BLAS_THREADS"}
    full.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", **env)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=ROOT, env=full)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_default_runs_the_service_on_one_blas_thread():
    seen = run({})
    if seen["before"] == [1]:
        pytest.skip("BLAS runs on one thread here before the service starts: nothing to check")
    assert seen["health"] == 200 and seen["inside"] == [1]


def test_zero_leaves_the_librarys_count_and_another_number_is_applied():
    assert run({"BLAS_THREADS": "0"})["inside"] == run({"BLAS_THREADS": "0"})["before"]
    seen = run({"BLAS_THREADS": "3"})
    assert seen["inside"] == [3]
