"""Shared fixtures of the service tests: tiny weights per arch, an in-process client, a live uvicorn server.

Everything here builds its own weights in a temporary folder; only ``real_weights`` / ``data_dir`` use the
committed ``weights/`` and ``DATA_DIR``, and the tests asking for them skip with the reason when absent.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import tiny_weights  # noqa: E402
from service_helpers import app_client, make_settings, png_base64  # noqa: E402,F401

from service.app import create_app  # noqa: E402
from service.registry import ModelRegistry  # noqa: E402
from service.settings import Settings  # noqa: E402

ARCHS = ("cnn", "rnn", "lstm")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """A complete weights folder (three archs, both backends) of tiny random models."""
    return tiny_weights.build_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def registry(weights_dir) -> ModelRegistry:
    return ModelRegistry(weights_dir).load_all()


@pytest.fixture
async def client(weights_dir, registry):
    async with app_client(create_app(make_settings(weights_dir), registry=registry)) as c:
        yield c


@pytest.fixture(scope="session")
def rng_images() -> np.ndarray:
    """Four random uint8 32x32 RGB images."""
    return np.random.default_rng(7).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)


# ------------------------------------------------------------------ real weights and data
def real_weights_dir() -> Path:
    return Path(os.environ.get("WEIGHTS_DIR", ROOT / "weights"))


@pytest.fixture(scope="session")
def real_weights() -> Path:
    path = real_weights_dir()
    missing = [a for a in ARCHS if not (path / a / "manifest.json").is_file()]
    if missing:
        pytest.skip(f"committed weights not found for {missing} under {path} (run scripts/train.py --export)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("DATA_DIR")
    if not value:
        pytest.skip("DATA_DIR is not set: real-data checks need e.g. DATA_DIR=../shared/data")
    path = Path(value).resolve()
    if not (path / "cifar10" / "test").is_dir() or not (path / "nusax-sentiment" / "indonesian" / "test.csv").is_file():
        pytest.skip(f"DATA_DIR={path} holds no cifar10/test or nusax-sentiment/indonesian/test.csv")
    return path


# ------------------------------------------------------------------ a live uvicorn process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, base_url: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.base_url, self.proc, self.log_path = base_url, proc, log_path

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(line))
        return lines


def start_server(weights: Path, log_path: Path, ready_timeout: float = 120, **env_overrides) -> LiveServer:
    port = free_port()
    env = {**os.environ, "GC_FREEZE": "1", "HOST": "127.0.0.1", "PORT": str(port), "WEIGHTS_DIR": str(weights),
           "LOG_LEVEL": "INFO", "TF_CPP_MIN_LOG_LEVEL": "2", **env_overrides}
    if "DATA_DIR" not in env_overrides:
        env.pop("DATA_DIR", None)
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return LiveServer(base, proc, log_path)
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"uvicorn not ready after {ready_timeout}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_server(weights_dir, tmp_path_factory):
    server = start_server(weights_dir, tmp_path_factory.mktemp("live") / "server.log")
    yield server
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
