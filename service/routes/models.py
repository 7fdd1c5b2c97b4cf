"""GET /models: what each arch serves -- classes, input, backends, params, checksums, training metrics."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import RegistryDep
from ..registry import ArchEntry
from ..schemas import InputInfo, ModelInfo, ModelsResponse

router = APIRouter(tags=["models"])


def model_info(entry: ArchEntry, status: dict) -> ModelInfo:
    manifest, spec = entry.manifest or {}, entry.input_spec
    return ModelInfo(
        arch=entry.arch, classes=list(entry.classes),
        input=None if spec is None else InputInfo(kind=spec.kind, shape=list(spec.shape), dtype=spec.dtype,
                                                  sequence_length=spec.sequence_length,
                                                  request_field="images" if spec.kind == "image" else "texts"),
        backends=status, available_backends=list(entry.backends),
        params=manifest.get("params") or next((b.params for b in entry.backends.values()), None),
        weights_sha256={k: v for k, v in (manifest.get("files") or {}).items() if isinstance(v, str)},
        metrics=manifest.get("metrics"), config_name=manifest.get("config_name"), seed=manifest.get("seed"))


@router.get("/models", response_model=ModelsResponse, summary="The served models")
async def models(registry: RegistryDep) -> ModelsResponse:
    status = registry.status()
    return ModelsResponse(models={arch: model_info(e, status[arch]) for arch, e in registry.entries.items()})
