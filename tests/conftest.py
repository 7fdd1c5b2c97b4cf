"""Shared test settings: quiet TensorFlow, the repo root and the data folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process apps do not freeze the test process for the garbage collector (a full collection per app start,
# and frozen objects would outlive their tests); the subprocess servers of the live tests run the default.
os.environ.setdefault("GC_FREEZE", "0")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder from DATA_DIR; tests that need it skip with the reason when it is not set."""
    value = os.environ.get("DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("DATA_DIR is not set to the data folder (e.g. DATA_DIR=../shared/data)")
    return Path(value).resolve()
