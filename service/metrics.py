"""Prometheus metrics of one service process: requests by route and status, latencies, batch sizes.

Each app has its own :class:`prometheus_client.CollectorRegistry` (so several apps, e.g. in tests, never
share series). With several uvicorn workers every worker counts its own requests: scrape each replica
(see docs/scaling.md).
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The metric families, and the two places that feed them: one observation per HTTP request
    (:meth:`observe_request`, from the middleware) and one per forward pass (:meth:`observe_batch`)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter("http_requests_total", "HTTP requests answered, by route template and status.",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("http_request_duration_seconds", "Time to answer an HTTP request.",
                                      ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        # protocol: "predict" (/predict), "v2" (Open Inference Protocol), "tfserving" (TF Serving REST)
        self.predict_requests = Counter("predict_requests_total", "Inference requests by arch, backend, status "
                                        "and protocol.", ["arch", "backend", "status", "protocol"], registry=r)
        self.predict_latency = Histogram("predict_request_duration_seconds", "Time to answer an inference request "
                                         "(decoding, queueing, forward pass, response).",
                                         ["arch", "backend", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("inference_batch_size", "Items per forward pass.", ["arch", "backend"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("inference_batch_requests", "Requests merged into one forward pass.",
                                        ["arch", "backend"], buckets=BATCH_BUCKETS, registry=r)
        self.forward_seconds = Histogram("inference_forward_duration_seconds", "Time of one forward pass.",
                                         ["arch", "backend"], buckets=LATENCY_BUCKETS, registry=r)

    def observe_request(self, method: str, route: str, status: int, seconds: float,
                        arch: str | None = None, backend: str | None = None, protocol: str = "predict") -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)
        if arch is not None and backend is not None:
            self.predict_requests.labels(arch, backend, str(status), protocol).inc()
            self.predict_latency.labels(arch, backend, protocol).observe(seconds)

    def observe_batch(self, arch: str, backend: str, items: int, requests: int, seconds: float) -> None:
        self.batch_size.labels(arch, backend).observe(items)
        self.batch_requests.labels(arch, backend).observe(requests)
        self.forward_seconds.labels(arch, backend).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
