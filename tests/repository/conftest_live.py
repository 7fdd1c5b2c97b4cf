"""A live uvicorn process (``python -m service``) on a model repository, ready when /ready answers 200."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    base_url: str
    proc: subprocess.Popen
    log_path: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(repo: Path, log_path: Path, python: str = sys.executable, ready_timeout: float = 180,
                 **env_overrides) -> LiveServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "WEIGHTS_DIR", "ADMIN_TOKEN", "GC_FREEZE")}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "MODEL_REPOSITORY": str(repo), "LOG_LEVEL": "INFO",
                "TF_CPP_MIN_LOG_LEVEL": "2", **env_overrides})
    log = open(log_path, "wb")
    proc = subprocess.Popen([python, "-m", "service"], cwd=env.pop("CWD", ROOT), env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return LiveServer(base, proc, log_path)
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"not ready after {ready_timeout}s:\n{log_path.read_text()[-3000:]}")
