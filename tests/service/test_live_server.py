"""Against a real uvicorn process on 127.0.0.1 (`python -m service`), as a user's client sees it."""
from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest

from service_helpers import png_base64

pytestmark = pytest.mark.anyio


async def test_endpoints_over_http(live_server, rng_images):
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as c:
        assert (await c.get("/health")).json()["status"] == "ok"
        assert (await c.get("/ready")).json()["ready"] is True
        assert set((await c.get("/models")).json()["models"]) == {"cnn", "rnn", "lstm"}
        out = {}
        for backend in ("scratch", "keras"):
            r = await c.post(f"/predict/cnn?backend={backend}", json={"images": [png_base64(i) for i in rng_images]})
            assert r.status_code == 200, r.text
            out[backend] = np.array([p["probabilities"] for p in r.json()["predictions"]])
        assert np.abs(out["scratch"] - out["keras"]).max() < 1e-5
        r = await c.post("/predict/lstm?backend=keras", json={"texts": ["enak sekali", "buruk"]})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        r = await c.post("/predict/cnn", json={"images": [[[0.5]]]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "images[0]"
        spec = (await c.get("/openapi.json")).json()
        assert {"/predict/cnn", "/predict/rnn", "/predict/lstm"} <= set(spec["paths"])


async def test_structured_logs_carry_request_id_and_latency(live_server):
    async with httpx.AsyncClient(base_url=live_server.base_url) as c:
        r = await c.get("/models", headers={"X-Request-ID": "live-log-check-1"})
        assert r.headers["x-request-id"] == "live-log-check-1"
        r = await c.post("/predict/nope", json={})
        generated = r.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = {rec.get("request_id"): rec for rec in live_server.log_lines() if rec.get("msg") == "request"}
        if "live-log-check-1" in lines and generated in lines:
            break
        await asyncio.sleep(0.1)
    rec = lines["live-log-check-1"]
    assert rec["status"] == 200 and rec["path"] == "/models" and rec["method"] == "GET"
    assert isinstance(rec["latency_ms"], float) and rec["latency_ms"] > 0 and rec["level"] == "INFO"
    assert lines[generated]["status"] == 404
    loaded = [r for r in live_server.log_lines() if r.get("msg") == "models loaded"]
    assert loaded and loaded[0]["ready"] is True and loaded[0]["load_seconds"] > 0


def test_declared_oversized_body_is_refused_before_it_is_sent(live_server):
    """Content-Length over MAX_BODY_BYTES (32 MiB): 413 at once, without waiting for the body (raw socket).
    Bodies without or with a false Content-Length are counted as they arrive (test_bad_inputs)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(live_server.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /predict/rnn HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 41943040\r\n\r\n" + b'{"texts": ["')
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b'"payload_too_large"' in body and b"MAX_BODY_BYTES" in body


async def test_health_answers_while_a_large_batch_is_computed(live_server):
    images = np.random.default_rng(0).random((256, 32, 32, 3)).round(4).tolist()
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as c:
        big = asyncio.create_task(c.post("/predict/cnn", json={"images": images}))
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        assert (await c.get("/health")).status_code == 200
        health_latency = time.perf_counter() - t0
        r = await big
        assert r.status_code == 200 and len(r.json()["predictions"]) == 256
        assert health_latency < 1.0


def _http_get(sock, path: str) -> bytes:
    """One keep-alive GET on an open socket -> the raw response (b"" if the server had closed it)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return data


def test_an_idle_keep_alive_connection_outlives_the_clients_expiry(live_server):
    """A connection left idle for 6 s (longer than httpx's 5 s keepalive_expiry and uvicorn's default
    timeout_keep_alive of 5 s) still serves the next request: the server is not the side that closes it
    (KEEP_ALIVE_S, 75 s), so a client never reuses a connection that is being closed (httpx ReadError)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(live_server.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        assert _http_get(sock, "/health").startswith(b"HTTP/1.1 200")
        time.sleep(6.0)
        second = _http_get(sock, "/health")
    assert second.startswith(b"HTTP/1.1 200"), f"connection closed by the server after 6 s idle: {second!r}"
