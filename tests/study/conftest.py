"""Fixtures shared by the study tests (issue 20)."""
from __future__ import annotations

import pytest

from study_helpers import write_tiny_nusax


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    """A tiny data folder and a file MLflow store, both under ``tmp_path``, set in the environment
    (the local cluster's workers inherit it)."""
    data = write_tiny_nusax(tmp_path / "data")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.delenv("SCRATCH_TRACKING", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return {"data": data, "store": store, "out": tmp_path / "study"}
