"""Fixtures of the protocol tests: the service tests' tiny weights, an in-process client and one live uvicorn.

The weights builder, the in-process client and the live-server starter are the service tests' own
(``tests/service/``), imported rather than copied.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
sys.path.insert(0, str(SERVICE_TESTS))

import tiny_weights  # noqa: E402
from service_helpers import app_client, make_settings, png_base64  # noqa: E402,F401 (png_base64: for the tests)

from service.app import create_app  # noqa: E402
from service.registry import ModelRegistry  # noqa: E402


def _service_conftest():
    spec = importlib.util.spec_from_file_location("service_tests_conftest", SERVICE_TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


start_server = _service_conftest().start_server


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    return tiny_weights.build_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def registry(weights_dir) -> ModelRegistry:
    return ModelRegistry(weights_dir).load_all()


@pytest.fixture
async def client(weights_dir, registry):
    async with app_client(create_app(make_settings(weights_dir, max_batch=16), registry=registry)) as c:
        yield c


@pytest.fixture(scope="session")
def live_server(weights_dir, tmp_path_factory):
    server = start_server(weights_dir, tmp_path_factory.mktemp("live") / "server.log")
    yield server
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    """Three float32 images in [0, 1] (N, 32, 32, 3)."""
    return np.random.default_rng(11).random((3, 32, 32, 3), dtype=np.float32)


TEXTS = ["Makanannya enak dan pelayanannya ramah sekali.", "Saya kecewa, pesanan datang terlambat.",
         "Tempatnya biasa saja."]
