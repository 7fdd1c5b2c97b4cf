"""The Open Inference Protocol v2 (KServe ``docs/predict-api/v2/required_api.md``; Triton, MLServer) with
Triton's binary tensor data extension, so that ``tritonclient`` and the KServe SDK work unchanged.

    GET  /v2                                              server metadata
    GET  /v2/health/live, /v2/health/ready                200 true, 400 false
    GET  /v2/models/{name}[/versions/{v}][/ready]         model metadata, model readiness
    POST /v2/models/{name}[/versions/{v}]/infer           inference: outputs `probabilities` FP32 [N, C], `labels` BYTES [N]

Inference goes through the same input checks, dynamic batcher, metrics (``protocol="v2"``) and logs as
``/predict``; ``parameters.backend`` picks the backend. Errors are ``{"error": "..."}`` (400, 404, 413, 503).
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import inputs
from ..deps import RegistryDep
from ..errors import NotReady
from ..protocols import binary, network, repository
from ..protocols.datatypes import check_datatype, element_count, fail, from_binary, from_json, to_binary, to_json
from ..protocols.schemas import (InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, ProtocolError,
                                 RequestInput, ServerMetadata, inline_schema, parse)
from ..schemas import BackendName
from ..settings import Settings

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])

SERVER_NAME = "scratch-serve"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "keras"
OUTPUTS = {network.PROBABILITIES: "FP32", network.LABELS: "BYTES"}
UNSUPPORTED_PARAMETERS = {"classification": "the classification extension",
                          "shared_memory_region": "the shared-memory extensions"}

NameParam = Annotated[str, Path(description="A model of the repository (GET /v2/models/{name} describes it).",
                                openapi_examples={"cnn": {"value": "cnn"}, "lstm": {"value": "lstm"}})]
VersionParam = Annotated[str, Path(description="A version of that model (its metadata lists them).",
                                   openapi_examples={"1": {"value": "1"}})]
ERRORS = {s: {"model": ProtocolError, "description": d} for s, d in (
    (400, "Invalid request: bad JSON, shape/data mismatch, unknown datatype, input or output"),
    (404, "Unknown model or version"), (413, "Batch, body or image too large"),
    (503, "Models loading, or the backend is unavailable"))}
BOOL_ANSWER = {200: {"description": "True: `{\"live\": true}` / `{\"ready\": true}`"},
               400: {"model": ProtocolError, "description": "False, and why"},
               404: {"model": ProtocolError, "description": "Unknown model or version"}}
INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": inline_schema(InferenceRequest)},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "The JSON request, then the inputs' binary data "
                                                           "(header Inference-Header-Content-Length: the JSON's "
                                                           "length)."}}}}}
INFER_RESPONSES = {200: {"description": "The outputs; with binary outputs, the JSON followed by their bytes",
                         "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                         "headers": {binary.HEADER: {"description": "Length of the JSON when binary data follows.",
                                                     "schema": {"type": "integer"}}}},
                   **ERRORS}


# ------------------------------------------------------------------ server
@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


# The protocol's health answers are the status alone ("the body should be empty"); the body KServe's own
# server adds, {"live": true} / {"ready": true}, is what the KServe SDK's REST client reads, so it is here too.
@router.get("/health/live", response_class=Response, summary="Server live (200)", responses=BOOL_ANSWER)
async def live() -> Response:
    return JSONResponse({"live": True})


@router.get("/health/ready", response_class=Response, summary="Server ready: every model loaded",
            responses=BOOL_ANSWER)
async def ready(registry: RegistryDep) -> Response:
    if repository.server_ready(registry):
        return JSONResponse({"ready": True})
    why = "models are still loading" if not repository.loaded(registry) else "a model or backend failed to load; see /ready"
    return JSONResponse({"error": why}, status_code=400)


# ------------------------------------------------------------------ models
def model_ready(registry, name: str, version: str | None) -> Response:
    """True when the version can serve: at least one backend loaded (``parameters.backend`` picks one when the
    default did not load)."""
    ref = repository.resolve(registry, name, version)
    if ref.state == "ready":
        return JSONResponse({"name": ref.name, "ready": True})
    return JSONResponse({"error": f"{name} version {ref.version} is not ready: {ref.reason or ref.state}"},
                        status_code=400)


@router.get("/models/{name}/ready", response_class=Response, summary="Model ready", responses=BOOL_ANSWER)
async def ready_model(name: NameParam, registry: RegistryDep) -> Response:
    return model_ready(registry, name, None)


@router.get("/models/{name}/versions/{version}/ready", response_class=Response, summary="Model version ready",
            responses=BOOL_ANSWER)
async def ready_model_version(name: NameParam, version: VersionParam, registry: RegistryDep) -> Response:
    return model_ready(registry, name, version)


def model_metadata(registry, name: str, version: str | None) -> ModelMetadata:
    ref = repository.resolve(registry, name, version)
    if ref.input_spec is None:
        raise NotReady(f"{name} version {ref.version} is not loaded: {ref.reason or ref.state}", field="model",
                       reason=ref.reason or ref.state)
    in_name, datatype, in_shape = network.metadata_input(ref)  # texts also come as token_ids (INT [-1, L])
    return ModelMetadata(name=ref.name, versions=list(ref.versions), platform=PLATFORM,
                         inputs=[MetadataTensor(name=in_name, datatype=datatype, shape=in_shape)],
                         outputs=[MetadataTensor(name=network.PROBABILITIES, datatype="FP32",
                                                 shape=[-1, len(ref.classes)]),
                                  MetadataTensor(name=network.LABELS, datatype="BYTES", shape=[-1])])


@router.get("/models/{name}", response_model=ModelMetadata, summary="Model metadata", responses=ERRORS)
async def metadata(name: NameParam, registry: RegistryDep) -> ModelMetadata:
    return model_metadata(registry, name, None)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, summary="Model version metadata",
            responses=ERRORS)
async def metadata_version(name: NameParam, version: VersionParam, registry: RegistryDep) -> ModelMetadata:
    return model_metadata(registry, name, version)


# ------------------------------------------------------------------ inference
def backend_name(req: InferenceRequest) -> str | None:
    """``parameters.backend`` (None: not given), a known backend."""
    name = (req.parameters or {}).get("backend")
    known = [b.value for b in BackendName]
    if name is not None and name not in known:
        raise fail("parameters.backend", f"unknown backend {name!r}; known: {', '.join(known)}")
    return name


def flag(params: dict | None, key: str, default: bool, where: str) -> bool:
    value = (params or {}).get(key, default)
    if type(value) is not bool:
        raise fail(f"{where}.{key}", f"must be true or false, received {value!r}")
    return value


def requested_outputs(req: InferenceRequest) -> list[tuple[str, bool]]:
    """(output name, as binary data) in the order asked for (absent: every output)."""
    default = flag(req.parameters, "binary_data_output", False, "parameters")
    if req.outputs is None:
        return [(name, default) for name in OUTPUTS]
    out = []
    for i, o in enumerate(req.outputs):
        where = f"outputs[{i}]"
        if o.name not in OUTPUTS:
            raise fail(where, f"unknown output {o.name!r}; this model's outputs: {', '.join(OUTPUTS)}")
        for key, what in UNSUPPORTED_PARAMETERS.items():
            if key in (o.parameters or {}):
                raise fail(f"{where}.parameters.{key}", f"{what} is not supported")
        out.append((o.name, flag(o.parameters, "binary_data", default, f"{where}.parameters")))
    return out


def binary_size(inp: RequestInput, where: str) -> int | None:
    params = inp.parameters or {}
    if "shared_memory_region" in params:
        raise fail(f"{where}.parameters.shared_memory_region", "the shared-memory extensions are not supported")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise fail(f"{where}.parameters.binary_data_size", f"must be a non-negative integer, received {size!r}")
    if inp.data is not None:
        raise fail(where, "both `data` and `parameters.binary_data_size`; give one")
    return size


def network_input(ref: repository.ModelRef, inp: RequestInput, raw: memoryview | None, where: str,
                  settings: Settings, inline: bool) -> np.ndarray:
    """One input tensor (JSON data or binary bytes) -> the backend's network input; raises ``inputs.Deferred``
    when ``inline`` and the tensor is more than a small request's work."""
    shape = tuple(inp.shape)
    if inline and element_count(shape) > network.INLINE_MAX_ELEMENTS:
        raise inputs.Deferred(f"{element_count(shape)} elements")
    arr = from_binary(raw, inp.datatype, shape, where) if raw is not None else from_json(inp.data, inp.datatype,
                                                                                         shape, where)
    if inp.datatype == "BYTES":
        if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] != 1):
            raise fail(where, f"shape {list(shape)}; BYTES inputs are [N] (or [N, 1]), one item per element")
        network.check_batch(arr.shape[0], where, settings.max_batch)
        items = list(arr.reshape(-1))
        if inp.name == network.IMAGE_INPUT:
            return network.predict_input(ref, "images", network.as_image_files(items), settings, inline)
        return network.predict_input(ref, "texts", network.as_texts(items, inp.name), settings, inline)
    return network.tensor_input(arr, ref.input_spec, where, settings.max_batch, ref.vocabulary_size)


async def infer_model(name: str, version: str | None, request: Request, registry, settings: Settings,
                      inference) -> Response:
    body = await request.body()
    header, rest = binary.split_body(body, request.headers.get(binary.HEADER))
    req = parse(InferenceRequest, header)
    ref = repository.resolve(registry, name, version)
    served = ref.backend(backend_name(req), settings.default_backend, "parameters.backend")
    request.state.metric_labels = (ref.name, served.name, "v2")
    outputs = requested_outputs(req)
    inp = req.inputs[0]
    where = f"inputs[0] ({inp.name})"
    check_datatype(inp.datatype, where)
    network.check_input(ref, inp.name, inp.datatype, where)
    size = binary_size(inp, where)
    slices = binary.slice_binary(rest, [(where, size)] if size is not None else [])  # [] if all JSON
    raw = slices[0] if slices else None
    try:  # a small request is decoded right here, as /predict does: a thread hand-over would cost the loop more
        batch = network_input(ref, inp, raw, where, settings, inline=True)
    except inputs.Deferred:
        batch = await run_in_threadpool(network_input, ref, inp, raw, where, settings, False)
    result = await inference.predict_proba(served, batch)
    probs = result.probs
    tensors = {network.PROBABILITIES: probs,
               network.LABELS: np.array([served.classes[int(i)] for i in probs.argmax(axis=1)], dtype=object)}
    out_json, chunks = [], []
    for out_name, as_binary in outputs:
        arr, datatype = tensors[out_name], OUTPUTS[out_name]
        entry = {"name": out_name, "datatype": datatype, "shape": list(arr.shape)}
        if as_binary:
            data = to_binary(arr, datatype)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = to_json(arr, datatype)
        out_json.append(entry)
    response = {"model_name": ref.name, "model_version": ref.version,
                "id": req.id if req.id is not None else getattr(request.state, "request_id", ""),
                "parameters": {"backend": served.name, "model_sha256": served.sha256,
                               "batch_size": result.batch_size, "batch_requests": result.requests},
                "outputs": out_json}
    content, headers = binary.join_body(response, chunks)
    headers.update({"X-Batch-Size": str(result.batch_size), "X-Batch-Requests": str(result.requests)})
    media_type = headers.pop("Content-Type")
    return Response(content, media_type=media_type, headers=headers)


@router.post("/models/{name}/infer", response_model=InferenceResponse, summary="Inference",
             openapi_extra=INFER_BODY, responses=INFER_RESPONSES)
async def infer(name: NameParam, request: Request) -> Response:
    state = request.app.state  # not dependencies: resolving them was a tenth of a small request's CPU
    return await infer_model(name, None, request, state.registry, state.settings, state.inference)


@router.post("/models/{name}/versions/{version}/infer", response_model=InferenceResponse,
             summary="Inference on a model version", openapi_extra=INFER_BODY, responses=INFER_RESPONSES)
async def infer_version(name: NameParam, version: VersionParam, request: Request) -> Response:
    state = request.app.state
    return await infer_model(name, version, request, state.registry, state.settings, state.inference)

