"""The base install has no TensorFlow: a venv made with `pip install .` starts the service on the committed
models, serves the scratch backend and reports the keras backend unavailable with the install line.

Needs that venv: TF_FREE_PYTHON=<venv>/bin/python (.ci/run builds it); skipped otherwise, saying so."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from repository_helpers import ROOT
from conftest_live import start_server

PYTHON = os.environ.get("TF_FREE_PYTHON")


@pytest.mark.slow
@pytest.mark.skipif(not PYTHON, reason="TF_FREE_PYTHON is not set (a venv made with `pip install .`; .ci/run builds one)")
def test_the_service_runs_without_tensorflow(tmp_path):
    probe = subprocess.run([PYTHON, "-c", "import tensorflow"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    server = start_server(ROOT / "weights", tmp_path / "server.log", python=PYTHON, CWD="/tmp")
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            assert c.get("/ready").status_code == 200
            r = c.post("/predict/cnn", json={"images": [np.full((32, 32, 3), 0.5).tolist()]})
            assert r.status_code == 200 and r.json()["backend"] == "scratch"
            r = c.post("/predict/lstm", json={"texts": ["Makanannya enak sekali"]})
            assert r.status_code == 200
            r = c.post("/predict/cnn?backend=keras", json={"images": [np.full((32, 32, 3), 0.5).tolist()]})
            assert r.status_code == 503 and "scratch-serve[keras]" in r.json()["error"]["reason"]
            keras = c.get("/models").json()["models"]["rnn"]["backends"]["keras"]
            assert keras["status"] == "unavailable" and "TensorFlow/Keras is not installed" in keras["reason"]
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=20)
