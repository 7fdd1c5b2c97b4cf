"""Dependencies, declared once as ``Annotated`` aliases (override them in tests with ``app.dependency_overrides``).

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, one thread
hand-over per dependency per request, and these only read ``app.state``. Under load (cnn/scratch,
concurrency 32) those hand-overs were a fifth of the event loop's work."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ParityDep = Annotated[ParityService, Depends(get_parity)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
