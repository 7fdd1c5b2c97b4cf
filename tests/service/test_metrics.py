"""GET /metrics: Prometheus text format with request counts by route and status, latency histograms and
batch-size histograms per arch and backend (parsed with prometheus_client's own parser)."""
from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service_helpers import app_client, make_settings
from service.app import create_app

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value}"""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(table: dict, name: str, **labels) -> float:
    return table.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_latencies_and_batches(weights_dir, registry):
    app = create_app(make_settings(weights_dir, max_body_bytes=2048, batch_wait_ms=300), registry=registry)
    async with app_client(app) as c:
        assert (await c.post("/predict/rnn", json={"texts": ["enak", "buruk", "biasa"]})).status_code == 200
        merged = await asyncio.gather(*(c.post("/predict/lstm?backend=keras", json={"texts": [f"enak {i}"]})
                                        for i in range(4)))
        assert [r.status_code for r in merged] == [200] * 4
        assert (await c.post("/predict/rnn", json={"texts": [""]})).status_code == 422
        assert (await c.post("/predict/nope", json={"texts": ["x"]})).status_code == 404
        assert (await c.post("/predict/rnn", content=b'{"texts": ["' + b"a" * 4000 + b'"]}',
                             headers={"content-type": "application/json"})).status_code == 413
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/no/such/path")).status_code == 404
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    http = "http_requests_total"
    assert value(m, http, method="POST", route="/predict/{model}", status="200") == 5
    assert value(m, http, method="POST", route="/predict/{model}", status="422") == 1
    assert value(m, http, method="POST", route="/predict/{model}", status="404") == 1
    assert value(m, http, method="POST", route="/predict/{model}", status="413") == 1  # refused before routing
    assert value(m, http, method="GET", route="/health", status="200") == 1
    assert value(m, http, method="GET", route="unmatched", status="404") == 1
    assert value(m, "http_request_duration_seconds_count", method="POST", route="/predict/{model}") == 8
    assert value(m, "http_request_duration_seconds_sum", method="POST", route="/predict/{model}") > 0
    assert value(m, "http_request_duration_seconds_bucket", method="GET", route="/health", le="+Inf") == 1

    assert value(m, "predict_requests_total", arch="rnn", backend="scratch", status="200", protocol="predict") == 1
    assert value(m, "predict_requests_total", arch="rnn", backend="scratch", status="422", protocol="predict") == 1
    assert value(m, "predict_requests_total", arch="lstm", backend="keras", status="200", protocol="predict") == 4
    assert value(m, "predict_request_duration_seconds_count", arch="lstm", backend="keras", protocol="predict") == 4

    # rnn/scratch: one pass of 3 items; lstm/keras: 4 single-text requests sent at once within 300 ms
    assert value(m, "inference_batch_size_count", arch="rnn", backend="scratch") == 1
    assert value(m, "inference_batch_size_sum", arch="rnn", backend="scratch") == 3
    assert value(m, "inference_batch_size_bucket", arch="rnn", backend="scratch", le="2.0") == 0
    assert value(m, "inference_batch_size_bucket", arch="rnn", backend="scratch", le="4.0") == 1
    passes = value(m, "inference_batch_size_count", arch="lstm", backend="keras")
    assert value(m, "inference_batch_size_sum", arch="lstm", backend="keras") == 4
    assert value(m, "inference_batch_requests_sum", arch="lstm", backend="keras") == 4
    assert 1 <= passes < 4, "concurrent requests were not merged"
    assert value(m, "inference_forward_duration_seconds_count", arch="lstm", backend="keras") == passes
    assert max(int(x.headers["x-batch-size"]) for x in merged) > 1


async def test_metrics_is_documented_and_fresh_per_app(weights_dir, registry):
    async with app_client(create_app(make_settings(weights_dir), registry=registry)) as c:
        spec = (await c.get("/openapi.json")).json()
        assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
        headers = spec["paths"]["/predict/cnn"]["post"]["responses"]["200"]["headers"]
        assert {"X-Batch-Size", "X-Batch-Requests"} <= set(headers)
        m = samples((await c.get("/metrics")).text)
    # a new app starts from zero: no series shared with the app of the test above
    assert value(m, "http_requests_total", method="POST", route="/predict/{model}", status="200") == 0
