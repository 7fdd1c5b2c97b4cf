"""Fixtures of the protocol tests: the service tests' tiny weights, an in-process client and one live uvicorn.

The weights builder, the in-process client and the live-server starter are the service tests' own
(``tests/service/``), imported rather than copied.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from protocol_helpers import SERVICE_TESTS, app_client, create_app, make_settings


def _service_conftest():
    spec = importlib.util.spec_from_file_location("service_tests_conftest", SERVICE_TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_service = _service_conftest()
# The service tests' own fixtures, shared rather than copied: tiny weights of the three archs, their loaded
# registry, one live uvicorn on them (session-scoped: each test folder starts its own).
anyio_backend, weights_dir, registry, live_server = (_service.anyio_backend, _service.weights_dir,
                                                     _service.registry, _service.live_server)


@pytest.fixture
async def client(weights_dir, registry):
    """In process, MAX_BATCH=16 (so the 413 cases stay small)."""
    async with app_client(create_app(make_settings(weights_dir, max_batch=16), registry=registry)) as c:
        yield c


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    """Three float32 images in [0, 1] (N, 32, 32, 3)."""
    return np.random.default_rng(11).random((3, 32, 32, 3), dtype=np.float32)
