"""TF Serving's REST API (tensorflow/serving ``g3doc/api_rest.md``), so code written for TF Serving works unchanged.

    GET  /v1/models/{name}[/versions/{v}]             model status: {"model_version_status": [...]}
    GET  /v1/models/{name}[/versions/{v}]/metadata    {"model_spec", "metadata": {"signature_def": ...}}
    POST /v1/models/{name}[/versions/{v}]:predict     {"instances": [...]} -> {"predictions": [...]}
                                                      {"inputs": ...}      -> {"outputs": ...}

One signature, ``serving_default``: the model's input (``images``, or ``texts`` -- also token ids) and one output,
``probabilities`` [N, C]. Image instances are 3-D nested lists in [0, 1] or ``{"b64": "<PNG/JPEG file>"}``;
text instances are strings, or lists of token ids. ``?backend=keras`` picks the backend (default
DEFAULT_BACKEND). The same input checks, dynamic batcher, metrics (``protocol="tfserving"``) and logs as
``/predict``; errors are ``{"error": "..."}`` (400, 404, 413, 503).
"""
from __future__ import annotations

import json
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from .. import inputs, jsonbody
from ..deps import RegistryDep
from ..errors import InvalidInput, NotReady
from ..protocols import network, repository
from ..protocols.datatypes import fail
from ..protocols.schemas import (ProtocolError, TFDim, TFMetadataBody, TFModelMetadata, TFModelSpec, TFModelStatus,
                                 TFModelVersionStatus, TFPredictRequest, TFPredictResponse, TFSignatureDef,
                                 TFSignatureDefs, TFStatus, TFTensorInfo, TFTensorShape, inline_schema, parse)
from ..schemas import BackendName
from ..settings import Settings

router = APIRouter(prefix="/v1/models", tags=["TF Serving REST"])

SIGNATURE = "serving_default"
METHOD = "tensorflow/serving/predict"
TF_DTYPES = {"FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "INT32": "DT_INT32", "INT64": "DT_INT64", "BYTES": "DT_STRING"}

NameParam = Annotated[str, Path(description="A model of the repository.",
                                openapi_examples={"cnn": {"value": "cnn"}, "rnn": {"value": "rnn"}})]
VersionParam = Annotated[str, Path(description="A version of that model.", openapi_examples={"1": {"value": "1"}})]
BackendParam = Annotated[BackendName | None, Query(description="Engine to serve with; default DEFAULT_BACKEND.")]
ERRORS = {s: {"model": ProtocolError, "description": d} for s, d in (
    (400, "Invalid request: both or neither of instances/inputs, ragged instances, bad values"),
    (404, "Unknown model or version"), (413, "Batch, body or image too large"),
    (503, "Models loading, or the backend is unavailable"))}
PREDICT_EXAMPLES = {
    "rnn_rows": {"summary": "rnn/lstm: texts in row format", "value": {"instances": ["Makanannya enak sekali."]}},
    "rnn_columns": {"summary": "rnn/lstm: texts in columnar format, named",
                    "value": {"signature_name": SIGNATURE, "inputs": {"texts": ["Tempatnya biasa saja."]}}},
    "cnn_rows": {"summary": "cnn: a 32x32x3 image in [0, 1]", "value": {"instances": [[[[0.5, 0.25, 0.75]] * 32] * 32]}},
}


# The predict routes come first: Starlette answers an unsupported method with the Allow header of the first
# route whose path matches, and `/{name}` also matches `cnn:predict` (OPTIONS would then advertise GET).
PREDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": inline_schema(TFPredictRequest), "examples": PREDICT_EXAMPLES}}}}


@router.post("/{name}:predict", response_model=TFPredictResponse, response_model_exclude_none=True,
             summary="Predict (row or columnar format)", responses=ERRORS, openapi_extra=PREDICT_BODY)
async def predict(name: NameParam, request: Request, backend: BackendParam = None) -> dict:
    state = request.app.state  # not dependencies: resolving them was a tenth of a small request's CPU
    return await predict_model(name, None, backend, request, state.registry, state.settings, state.inference)


@router.post("/{name}/versions/{version}:predict", response_model=TFPredictResponse,
             response_model_exclude_none=True, summary="Predict on a model version", responses=ERRORS,
             openapi_extra=PREDICT_BODY)
async def predict_version(name: NameParam, version: VersionParam, request: Request,
                          backend: BackendParam = None) -> dict:
    state = request.app.state
    return await predict_model(name, version, backend, request, state.registry, state.settings, state.inference)


# ------------------------------------------------------------------ status and metadata
def version_status(ref: repository.ModelRef) -> TFModelVersionStatus:
    """AVAILABLE when the version can serve (a backend loaded), LOADING, else END with the reason."""
    if ref.state == "ready":
        state, status = "AVAILABLE", TFStatus(error_code="OK", error_message="")
    elif ref.state == "loading":
        state, status = "LOADING", TFStatus(error_code="OK", error_message="")
    else:
        state, status = "END", TFStatus(error_code="UNKNOWN", error_message=str(ref.reason or ref.state))
    return TFModelVersionStatus(version=ref.version, state=state, status=status)


def model_status(registry, name: str, version: str | None) -> TFModelStatus:
    refs = ([repository.resolve(registry, name, version)] if version is not None
            else repository.all_versions(registry, name))
    return TFModelStatus(model_version_status=[version_status(r) for r in refs])


@router.get("/{name}", response_model=TFModelStatus, summary="Model status (every version)", responses=ERRORS)
async def status(name: NameParam, registry: RegistryDep) -> TFModelStatus:
    return model_status(registry, name, None)


@router.get("/{name}/versions/{version}", response_model=TFModelStatus, summary="Model version status",
            responses=ERRORS)
async def status_version(name: NameParam, version: VersionParam, registry: RegistryDep) -> TFModelStatus:
    return model_status(registry, name, version)


def tensor_info(name: str, dtype: str, shape: list[int]) -> TFTensorInfo:
    return TFTensorInfo(dtype=dtype, name=f"{SIGNATURE}_{name}:0",
                        tensor_shape=TFTensorShape(dim=[TFDim(size=str(d)) for d in shape]))


def model_metadata(registry, name: str, version: str | None) -> TFModelMetadata:
    ref = repository.resolve(registry, name, version)
    if ref.input_spec is None:
        raise NotReady(f"{name} version {ref.version} is not loaded: {ref.reason or ref.state}", field="model",
                       reason=ref.reason or ref.state)
    first, datatype, shape = network.metadata_input(ref)
    signature = TFSignatureDef(inputs={first: tensor_info(first, TF_DTYPES[datatype], shape)}, method_name=METHOD,
                               outputs={network.PROBABILITIES: tensor_info(network.PROBABILITIES, "DT_FLOAT",
                                                                           [-1, len(ref.classes)])})
    return TFModelMetadata(model_spec=TFModelSpec(name=ref.name, signature_name="", version=ref.version),
                           metadata=TFMetadataBody(signature_def=TFSignatureDefs(signature_def={SIGNATURE: signature})))


@router.get("/{name}/metadata", response_model=TFModelMetadata, summary="Model metadata (signature)",
            responses=ERRORS)
async def metadata(name: NameParam, registry: RegistryDep) -> TFModelMetadata:
    return model_metadata(registry, name, None)


@router.get("/{name}/versions/{version}/metadata", response_model=TFModelMetadata,
            summary="Model version metadata (signature)", responses=ERRORS)
async def metadata_version(name: NameParam, version: VersionParam, registry: RegistryDep) -> TFModelMetadata:
    return model_metadata(registry, name, version)


# ------------------------------------------------------------------ predict
def unpack(body: TFPredictRequest, ref: repository.ModelRef) -> tuple[str, str | None, list]:
    """(row format: ``instances`` / columnar: ``inputs``, the input's name, its items in batch order)."""
    if body.signature_name not in (None, "", SIGNATURE):
        raise fail("signature_name", f"unknown signature {body.signature_name!r}; this model has {SIGNATURE!r}")
    if body.instances is not None and body.inputs is not None:
        raise fail("body", "a request holds 'instances' (row format) or 'inputs' (columnar format), not both")
    if body.instances is None and body.inputs is None:
        raise fail("body", "missing 'instances' (row format) or 'inputs' (columnar format)")
    names = network.input_names(ref)
    field = "instances" if body.instances is not None else "inputs"
    value = body.instances if field == "instances" else body.inputs
    name = None
    if field == "inputs" and isinstance(value, dict) and "b64" not in value:
        if len(value) != 1 or next(iter(value)) not in names:
            raise fail("inputs", f"names {sorted(value)}; this model takes one input, {' or '.join(names)}")
        name, value = next(iter(value.items()))
        field = f"inputs.{name}"
    if not isinstance(value, list) or not value:
        raise fail(field, "must be a non-empty list, one item per instance (batch first)")
    if field == "instances" and all(isinstance(v, dict) and "b64" not in v for v in value):
        keys = {tuple(sorted(v)) for v in value}
        if len(keys) != 1 or len(next(iter(keys))) != 1 or next(iter(keys))[0] not in names:
            raise fail("instances", f"every instance must name the same one input, {' or '.join(names)}; "
                                    f"found {sorted(keys)}")
        name = next(iter(keys))[0]
        value = [v[name] for v in value]
    return field, name, value


def check_regular(items: list, field: str) -> None:
    """Every list-valued item has the same nested shape as the first (TF Serving refuses ragged instances)."""
    first = None
    for i, item in enumerate(items):
        if not isinstance(item, list):
            continue
        try:
            shape = np.shape(np.asarray(item, dtype=object if not item else None))
        except ValueError:
            raise fail(f"{field}[{i}]", "ragged: nested lists of different lengths") from None
        if first is None:
            first = (i, shape)
        elif shape != first[1]:
            raise fail(f"{field}[{i}]", f"shape {list(shape)} differs from {field}[{first[0]}]'s {list(first[1])}; "
                                        "every instance must have the same shape")


def network_input(ref: repository.ModelRef, field: str, name: str | None, items: list, settings: Settings,
                  inline: bool) -> np.ndarray:
    """The instances (or the columnar tensor's items) -> the network input, by /predict's input function."""
    spec = ref.input_spec
    network.check_batch(len(items), field, settings.max_batch)
    check_regular(items, field)
    if spec.kind == "image":
        images = []
        for i, v in enumerate(items):
            if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
                images.append(v["b64"])  # /predict's base64 form of an encoded file
            elif isinstance(v, list):
                images.append(v)
            else:
                raise fail(f"{field}[{i}]", 'an image is a nested list [height][width][channels] in [0, 1], or '
                                            '{"b64": "<base64 PNG/JPEG file>"}')
        return network.predict_input(ref, "images", images, settings, inline, rename=field)
    if name in (network.TOKEN_INPUT, network.TENSOR_INPUT) or (name is None and
                                                                all(isinstance(v, list) for v in items)):
        return network.predict_input(ref, "inputs", items, settings, inline, rename=field)
    bad = next((i for i, v in enumerate(items) if not isinstance(v, str)), None)
    if bad is not None:
        raise fail(f"{field}[{bad}]", "a text instance is a string (or every instance a list of token ids)")
    return network.predict_input(ref, "texts", items, settings, inline, rename=field)


def parse_body(raw: bytes) -> TFPredictRequest:
    """The body as JSON whatever its Content-Type (TF Serving's own examples are ``curl -d``, which sends
    ``application/x-www-form-urlencoded``); NaN and Infinity tokens are accepted, as TF Serving does."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}", field="body", reason=f"malformed JSON: {exc}",
                           code="malformed_json") from None
    except RecursionError:
        raise jsonbody.too_deep() from None
    if not isinstance(value, dict):
        raise fail("body", f"must be a JSON object, received {type(value).__name__}")
    return parse(TFPredictRequest, value)


async def predict_model(name: str, version: str | None, backend: BackendName | None, request: Request, registry,
                        settings: Settings, inference) -> dict:
    body = parse_body(await request.body())
    ref = repository.resolve(registry, name, version)
    served = ref.backend(backend.value if backend else None, settings.default_backend, "backend")
    request.state.metric_labels = (ref.name, served.name, "tfserving")
    field, input_name, items = unpack(body, ref)
    try:
        batch = network_input(ref, field, input_name, items, settings, inline=True)
    except inputs.Deferred:
        batch = await run_in_threadpool(network_input, ref, field, input_name, items, settings, False)
    result = await inference.predict_proba(served, batch)
    key = "predictions" if body.instances is not None else "outputs"
    return {key: result.probs.tolist()}
