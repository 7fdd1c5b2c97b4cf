"""GET /health (liveness: the process answers) and GET /ready (a model is loaded and nothing is still loading)."""
from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import RegistryDep
from ..schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])
_STARTED = time.monotonic()


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> HealthResponse:
    return HealthResponse(uptime_s=round(time.monotonic() - _STARTED, 3))


@router.get("/ready", response_model=ReadyResponse,
            summary="Readiness: 503 until a model is loaded and every configured backend loaded or failed with a reason",
            responses={503: {"model": ReadyResponse, "description": "Loading, or no model could be loaded "
                                                                     "(each status says why)"}})
async def ready(registry: RegistryDep) -> JSONResponse:
    body = ReadyResponse(ready=registry.ready, state="loaded" if registry.loaded else "loading",
                         load_seconds=None if registry.load_seconds is None else round(registry.load_seconds, 3),
                         models=registry.status())
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.ready else 503)
