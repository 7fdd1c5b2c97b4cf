"""The KServe SDK's REST client (kserve 0.21, ``InferenceRESTClient``) against a live uvicorn: v2 health, model
readiness, inference with JSON and binary tensors, and its v1 protocol (TF Serving's ``:predict``).

The SDK pins protobuf < 7 and psutil < 6, below what this project's venv (TensorFlow) holds, so it does not
install cleanly beside it: it runs from its own venv, named by KSERVE_PYTHON
(``python3 -m venv .venv-kserve && .venv-kserve/bin/pip install kserve==0.21.0``), and this test skips without it.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
KSERVE_PYTHON = os.environ.get("KSERVE_PYTHON")


@pytest.fixture(scope="module")
def kserve_run(request, images, tmp_path_factory):
    if not KSERVE_PYTHON or not Path(KSERVE_PYTHON).exists():
        pytest.skip("KSERVE_PYTHON (an interpreter with kserve installed, in its own venv) is not set")
    probe = subprocess.run([KSERVE_PYTHON, "-c", "import kserve"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"KSERVE_PYTHON={KSERVE_PYTHON} cannot import kserve: {probe.stderr[-300:]}")
    live_server = request.getfixturevalue("live_server")  # started only when the client can run
    path = tmp_path_factory.mktemp("kserve") / "images.npy"
    np.save(path, images)
    done = subprocess.run([KSERVE_PYTHON, str(HERE / "kserve_client.py"), live_server.base_url, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict(base_url: str, arch: str, backend: str, **body) -> tuple[np.ndarray, list[str]]:
    r = httpx.post(f"{base_url}/predict/{arch}?backend={backend}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    return np.array([p["probabilities"] for p in preds]), [p["label"] for p in preds]


def test_health(kserve_run):
    assert kserve_run["live"] is True and kserve_run["ready"] is True
    assert kserve_run["model_ready"] is True and kserve_run["unknown_model_ready"] is False


@pytest.mark.parametrize("mode", ["json", "binary"])
def test_infer_images(kserve_run, live_server, images, mode):
    got = kserve_run[f"cnn_{mode}"]
    assert got["id"] == "ks-1" and got["model_name"] == "cnn"
    ref, labels = predict(live_server.base_url, "cnn", "keras", images=images.tolist())
    np.testing.assert_array_equal(np.array(got["probabilities"]), ref)
    assert got["labels"] == labels


def test_infer_texts_v2_and_v1(kserve_run, live_server):
    from protocol_helpers import TEXTS

    ref, _ = predict(live_server.base_url, "rnn", "scratch", texts=TEXTS[:2])  # kserve_client.TEXTS
    np.testing.assert_array_equal(np.array(kserve_run["rnn"]), ref)
    np.testing.assert_array_equal(np.array(kserve_run["v1_rnn"]["predictions"]), ref)


def test_unknown_model_error(kserve_run):
    err = kserve_run["unknown_model_error"]
    assert "404" in err["text"] and "nope" in err["text"], err
