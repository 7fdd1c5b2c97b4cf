"""A real ``python -m service`` process for the fault and abuse tests: started on 127.0.0.1:<free port> with the
committed weights, its pid, workers, memory and log; bodies of every input kind."""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Makanannya enak dan pelayanannya ramah sekali", "Saya kecewa, pesanan datang terlambat dan dingin",
         "Tempatnya biasa saja, tidak ada yang istimewa", "Pemandangan indah dan udaranya sejuk"]
RSS_CAP_MB = 2048
"""Documented cap (docs/scaling.md) for one service process with the committed weights and both backends under
the abuse cases below: ~0.7-0.9 GB at rest, 1.2 GB peak measured (2026-12-01), peaks measured in reports/reliability.md."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_kb(pid: int, field: str = "VmRSS") -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` that are uvicorn workers (multiprocessing helpers left out)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                cmd = (stat.parent / "cmdline").read_bytes()
                if b"resource_tracker" not in cmd and b"semaphore_tracker" not in cmd:
                    out.append(int(stat.parent.name))
    return sorted(out)


class Service:
    """``python -m service`` with ``env`` overrides; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "GC_FREEZE": "1", "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "INFO",
                    "TF_CPP_MIN_LOG_LEVEL": "2", "WEIGHTS_DIR": str(ROOT / "weights"), **env}
        full_env.pop("DATA_DIR", None) if "DATA_DIR" not in env else None
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 300, loaded_lines: int = 1) -> None:
        """Until /ready answers 200 and the log says ``models loaded`` ``loaded_lines`` times (one per worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the service exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200 and self.loaded() >= loaded_lines:
                    return
            time.sleep(0.3)
        raise AssertionError(f"not ready in {timeout:.0f}s:\n{self.log()[-3000:]}")

    def loaded(self) -> int:
        return self.log().count('"models loaded"')

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out

    def rss_mb(self, field: str = "VmRSS") -> float:
        return proc_kb(self.proc.pid, field) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def png_b64(width: int = 32, height: int = 32, seed: int = 0) -> str:
    from PIL import Image

    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def png_header_b64(width: int, height: int) -> str:
    """A PNG whose header declares ``width x height`` RGB pixels, with one tiny compressed row (a bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * min(width, 64)))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def max_batch_body(arch: str, n: int) -> dict:
    if arch == "cnn":
        image = png_b64()
        return {"images": [image] * n}
    return {"texts": [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(n)]}
