"""GET /metrics: this process's Prometheus metrics in the text exposition format."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ..deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text format)",
            responses={200: {"description": "`http_requests_total{method,route,status}`, "
                                            "`http_request_duration_seconds{method,route}`, "
                                            "`predict_requests_total{arch,backend,status,protocol}` (protocol: predict, v2, tfserving), "
                                            "`predict_request_duration_seconds{arch,backend,protocol}`, "
                                            "`inference_batch_size{arch,backend}`, "
                                            "`inference_batch_requests{arch,backend}`, "
                                            "`inference_forward_duration_seconds{arch,backend}`",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
