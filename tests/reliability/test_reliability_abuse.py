"""Abuse of a real service process (committed weights, both backends): every case a 4xx naming what is wrong or
a bounded 200, never a 500 or a hang, and the process' peak RSS under RSS_CAP_MB afterwards.

Cases: deeply nested JSON, 1e400, a 10,000-item batch, base64 over the body limit and under it but no image, a
1x1 PNG, a 20000x20000 PNG header, concurrent maximum batches on every model and backend; many idle and
slow (slowloris) connections while /health keeps answering.
"""
from __future__ import annotations

import asyncio
import base64
import socket
import time

import httpx
import pytest

from reliability_helpers import RSS_CAP_MB, TEXTS, Service, max_batch_body, png_b64, png_header_b64

pytestmark = pytest.mark.slow
ARCHS, BACKENDS = ("cnn", "rnn", "lstm"), ("scratch", "keras")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("abuse") / "service.log")
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def post(service: Service, path: str, content: bytes | None = None, json=None, timeout: float = 120) -> httpx.Response:
    return httpx.post(service.url + path, content=content, json=json, timeout=timeout,
                      headers={"Content-Type": "application/json"})


def assert_client_error(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["status"] == r.status_code and error["message"]
    return error


def test_deeply_nested_json_is_a_4xx(service):
    """Refused for the real reason: 1,000 levels parse, and the item is named as nested deeper than an image;
    100,000 levels are "nested too deeply" (once reported as "not UTF-8 encoded JSON")."""
    for depth in (1000, 100_000):
        body = b'{"images": ' + b"[" * depth + b"0.5" + b"]" * depth + b"}"
        error = assert_client_error(post(service, "/predict/cnn", body), 400, 422)
        assert "UTF-8" not in error["reason"]
        if depth == 1000:
            assert error["field"] == "images[0]" and "nested deeper" in error["reason"], error
        else:
            assert error["field"] == "body" and "nested too deeply" in error["reason"], error
    assert post(service, "/predict/rnn", json={"texts": TEXTS[:1]}).status_code == 200, "still serving"


def test_1e400_is_refused_naming_the_item(service):
    image = [[[0.5, 0.5, 0.5]] * 32] * 32
    text = '{"images": [%s]}' % str(image).replace("0.5, 0.5, 0.5]", "0.5, 0.5, 1e400]", 1)
    error = assert_client_error(post(service, "/predict/cnn", text.encode()), 422)
    assert error["field"] == "images[0]" and error["index"] == 0
    assert "[0][0][2]" in error["reason"] and "1e400" in error["reason"], error  # where, and why inf


def test_10000_item_batch_is_a_413(service):
    error = assert_client_error(post(service, "/predict/rnn", json={"texts": ["enak"] * 10_000}), 413)
    assert "256" in error["message"] or "MAX_BATCH" in error["message"]
    image = png_b64()
    assert_client_error(post(service, "/predict/cnn", json={"images": [image] * 10_000}), 413)


def test_oversized_base64(service):
    over = base64.b64encode(b"\x00" * (33 * 1024 * 1024)).decode()  # > MAX_BODY_BYTES once encoded
    assert_client_error(post(service, "/predict/cnn", json={"images": [over]}), 413)
    under = base64.b64encode(b"\x89PNG" + b"\x00" * (20 * 1024 * 1024)).decode()  # under the limit, no image
    error = assert_client_error(post(service, "/predict/cnn", json={"images": [under]}), 422)
    assert error["index"] == 0


def test_1x1_png_is_answered(service):
    r = post(service, "/predict/cnn", json={"images": [png_b64(1, 1)]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_20000x20000_png_header_is_a_413_before_decoding(service):
    before = service.rss_mb()
    error = assert_client_error(post(service, "/predict/cnn", json={"images": [png_header_b64(20000, 20000)]}), 413)
    assert error["index"] == 0
    assert service.rss_mb() - before < 200, "nothing near 20000*20000*3 bytes was allocated"


def test_concurrent_maximum_batches_on_every_model(service):
    """Two 256-item requests at once on each of the 6 arch x backend pairs (12 concurrent, 3,072 items)."""
    async def main():
        async with httpx.AsyncClient(base_url=service.url, timeout=600) as client:
            jobs = [client.post(f"/predict/{arch}?backend={backend}", json=max_batch_body(arch, 256))
                    for arch in ARCHS for backend in BACKENDS for _ in range(2)]
            return await asyncio.gather(*jobs)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12, [r.text[:200] for r in responses if r.status_code != 200]
    assert all(len(r.json()["predictions"]) == 256 for r in responses)
    peak = service.rss_mb("VmHWM")
    print(f"peak RSS after the abuse cases: {peak:.0f} MB (cap {RSS_CAP_MB} MB)")
    assert peak < RSS_CAP_MB


def test_slowloris_and_idle_connections_leave_health_answering(service):
    """300 connections that trickle a request's headers a byte at a time plus 300 idle ones, held open while
    /health is asked 20 times: every answer a 200, the service's memory barely moves, and once they go the
    service serves predicts as before."""
    before = service.rss_mb()
    slow, idle = [], []
    try:
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            s.sendall(b"POST /predict/cnn HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ")
            slow.append(s)
            idle.append(socket.create_connection(("127.0.0.1", service.port), timeout=10))
        latencies = []
        with httpx.Client(base_url=service.url, timeout=10) as client:
            for _ in range(20):
                for s in slow:
                    s.sendall(b"a")
                t0 = time.perf_counter()
                assert client.get("/health").status_code == 200
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.05)
        print(f"/health under 600 slow/idle connections: median {sorted(latencies)[10] * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms; RSS {before:.0f} -> {service.rss_mb():.0f} MB")
        assert service.rss_mb() - before < 100
    finally:
        for s in slow + idle:
            s.close()
    assert post(service, "/predict/rnn", json={"texts": TEXTS[:2]}).status_code == 200
