"""Dependencies, declared once as ``Annotated`` aliases (override them in tests with ``app.dependency_overrides``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .inference import Inference
from .metrics import Metrics
from .parity import ParityService
from .registry import ModelRegistry
from .settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_parity(request: Request) -> ParityService:
    return request.app.state.parity


def get_inference(request: Request) -> Inference:
    return request.app.state.inference


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ParityDep = Annotated[ParityService, Depends(get_parity)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
