"""Dependencies, declared once as ``Annotated`` aliases (override them in tests with ``app.dependency_overrides``).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, one thread
hand-over per dependency per request, and these only read ``app.state``. Under load (cnn/scratch,
concurrency 32) those hand-overs were a fifth of the event loop's work."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from .errors import ServiceError
from .inference import Inference
from .metrics import Metrics
from .parity import ParityService
from .registry import ModelRegistry
from .settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_parity(request: Request) -> ParityService:
    return request.app.state.parity


async def get_inference(request: Request) -> Inference:
    return request.app.state.inference


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def require_admin(request: Request) -> None:
    """The repository endpoints: ``Authorization: Bearer <ADMIN_TOKEN>``; 403 when ADMIN_TOKEN is unset, 401
    when the token is missing or wrong (compared in constant time)."""
    token = request.app.state.settings.admin_token
    if not token:
        raise ServiceError("the repository endpoints are disabled: set ADMIN_TOKEN to enable them",
                           status=403, code="admin_disabled", field="Authorization", reason="ADMIN_TOKEN is not set")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        err = ServiceError("missing or wrong bearer token (Authorization: Bearer <ADMIN_TOKEN>)", status=401,
                           code="unauthorized", field="Authorization", reason="missing or wrong bearer token")
        raise err


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ParityDep = Annotated[ParityService, Depends(get_parity)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdminDep = Depends(require_admin)
