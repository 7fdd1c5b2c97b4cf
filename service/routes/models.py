"""GET /models: every model of the repository -- versions, input spec, classes, backends, params, checksums,
training metrics (or the conversion's parity line) -- and why any backend or version is unavailable."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import RegistryDep
from ..repository import ModelVersion
from ..schemas import InputInfo, ModelInfo, ModelsResponse, VersionInfo

router = APIRouter(tags=["models"])


def input_info(entry: ModelVersion) -> InputInfo | None:
    spec = entry.input_spec
    if spec is None:
        return None
    fields = list(entry.request_fields)
    return InputInfo(kind=spec.kind, shape=list(spec.shape), dtype=spec.dtype, sequence_length=spec.sequence_length,
                     vocabulary_size=spec.vocabulary_size, range=list(spec.value_range) if spec.value_range else None,
                     request_field=fields[0], request_fields=fields)


def checksums(entry: ModelVersion) -> dict[str, str]:
    return {k: v for k, v in ((entry.manifest or {}).get("files") or {}).items() if isinstance(v, str)}


def model_info(entry: ModelVersion, versions: dict[int, ModelVersion], backend_names: tuple[str, ...]) -> ModelInfo:
    manifest = entry.manifest or {}
    return ModelInfo(
        name=entry.name, arch=entry.name, version=entry.version, versions=sorted(versions), state=entry.state,
        reason=entry.reason, classes=list(entry.classes), input=input_info(entry),
        backends={b: entry.status(b) for b in backend_names}, available_backends=list(entry.backends),
        params=entry.params, weights_sha256=checksums(entry), metrics=manifest.get("metrics"),
        config_name=manifest.get("config_name"), seed=manifest.get("seed"), source=entry.source, note=entry.note,
        reload_error=entry.reload_error, parity=manifest.get("parity"),
        all_versions={str(v): VersionInfo(state=e.state, reason=e.reason, available_backends=list(e.backends),
                                          weights_sha256=checksums(e)) for v, e in sorted(versions.items())})


@router.get("/models", response_model=ModelsResponse, summary="The served models and their versions")
async def models(registry: RegistryDep) -> ModelsResponse:
    snapshot, served = registry.models, registry.entries
    return ModelsResponse(models={name: model_info(served[name], snapshot[name], registry.backend_names)
                                  for name in sorted(snapshot)})
