"""The one place the protocol routes meet the model registry: names, versions, readiness and backends.

Both protocols address a model as ``name`` and an optional ``version`` (a string of digits); without a
version the registry's choice (the highest) is served. Everything the routes need from the registry goes
through these functions, so a change of the registry's interface is a change here only.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import Backend, InputSpec
from ..errors import ModelNotFound

UNVERSIONED = "1"
"""The version a model without numbered version folders answers as."""


@dataclass(frozen=True)
class ModelRef:
    """One served model version, as the protocols describe it."""
    name: str
    version: str                  # the version served (the one asked for, or the registry's default)
    versions: tuple[str, ...]     # every version of this model that may be asked for
    input_spec: InputSpec | None  # None while loading or when the model failed to load
    classes: tuple[str, ...]
    backends: dict[str, str | None]  # backend name -> None when loaded, else why it is not


def model_names(registry) -> list[str]:
    return list(registry.entries)


def _versions(entry) -> tuple[str, ...]:
    return (UNVERSIONED,)


def resolve(registry, name: str, version: str | None = None) -> ModelRef:
    """The model ``name`` at ``version`` (None: the default); 404 for an unknown model or version."""
    entry = registry.get(name)
    versions = _versions(entry)
    if version is not None and version not in versions:
        reason = f"model {name!r} has no version {version!r}; its versions: {', '.join(versions)}"
        raise ModelNotFound(reason, field="version", reason=reason, details={"versions": list(versions)})
    status = registry.status().get(name, {})
    backends = {b: None if s.get("status") == "ready" else (s.get("reason") or s.get("status"))
                for b, s in status.items()}
    return ModelRef(name, version or versions[-1], versions, entry.input_spec, tuple(entry.classes), backends)


def backend(registry, ref: ModelRef, backend_name: str) -> Backend:
    """The loaded backend serving ``ref``; 404/503 (with the reason) when it cannot."""
    return registry.backend(ref.name, backend_name)


def server_ready(registry) -> bool:
    return bool(registry.ready)


def loaded(registry) -> bool:
    return bool(registry.loaded)
