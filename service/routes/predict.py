"""POST /predict/{model} (the served version) and /predict/{model}/versions/{version}: class probabilities
for a batch of images, texts or the network's own input tensors, as the model's input spec says.

The hot path of the service, so the endpoints take only the ``Request``: no FastAPI dependencies, body
model or response model to resolve, validate and serialise per request (together a third of a single-text
request's server CPU). The body is parsed by :func:`service.jsonbody.predict_body` and checked item by item
in :mod:`service.inputs`; the answer is encoded once by orjson. The OpenAPI document says the same as
before: parameters and body here (made exact per model by :mod:`service.openapi`), ``PredictResponse`` as
the 200's schema.
"""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import inputs, jsonbody
from ..errors import InvalidInput, NotReady
from ..repository import ModelVersion
from ..schemas import PREDICT_EXAMPLES, BackendName, PredictRequest, PredictResponse, error_responses
from ..settings import Settings

router = APIRouter(tags=["predict"])
BACKENDS = tuple(b.value for b in BackendName)


def network_input(entry: ModelVersion, body: jsonbody.PredictBody, settings: Settings, inline: bool = False):
    """The request's items -> the version's network input; raises a 4xx naming the bad field and item."""
    return inputs.network_batch(entry, body, settings.max_batch, settings.max_image_pixels, inline=inline)


BATCH_HEADERS = {
    "X-Batch-Size": {"description": "Items in the forward pass that served this request (more than the request's "
                                    "own items when concurrent requests were merged: dynamic batching).",
                     "schema": {"type": "integer", "minimum": 1}},
    "X-Batch-Requests": {"description": "Requests merged into that forward pass.",
                         "schema": {"type": "integer", "minimum": 1}},
    "X-Model-Version": {"description": "The model version that answered.", "schema": {"type": "integer"}},
}
RESPONSES = {200: {"model": PredictResponse, "description": "One prediction per item, in the request's order",
                   "headers": BATCH_HEADERS},
             **error_responses(404, 413, 422, 500, 503)}
MODEL_PARAM = {"name": "model", "in": "path", "required": True,
               "description": "A model of the repository (GET /models lists them)", "schema": {"type": "string"},
               "examples": {a: {"value": a} for a in ("cnn", "rnn", "lstm")}}
VERSION_PARAM = {"name": "version", "in": "path", "required": True, "description": "A version number",
                 "schema": {"type": "integer", "minimum": 1}}
BACKEND_PARAM = {"name": "backend", "in": "query", "required": False,
                 "description": "Engine to serve with; default DEFAULT_BACKEND (scratch).",
                 "schema": {"type": "string", "enum": list(BACKENDS)},
                 "examples": {b: {"value": b} for b in BACKENDS}}
BODY = {"required": True, "content": {"application/json": {
    "schema": PredictRequest.model_json_schema(), "examples": PREDICT_EXAMPLES}}}


def backend_choice(request: Request) -> str | None:
    """``?backend=`` (None: not given), one of BACKENDS."""
    name = request.query_params.get("backend") if request.scope["query_string"] else None
    if name is not None and name not in BACKENDS:
        reason = f"Input should be {' or '.join(map(repr, BACKENDS))}"
        raise InvalidInput(f"backend: {reason}", field="backend", reason=reason)
    return name


def version_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        reason = f"a version is an integer >= 1, received {text!r}"
        raise InvalidInput(f"version: {reason}", field="version", reason=reason)
    return int(text)


def answer(entry: ModelVersion, served, result) -> Response:
    """The 200: ``PredictResponse``'s fields, built from plain lists (one ``tolist`` for the whole batch)."""
    probs = result.probs
    classes = served.classes
    predictions = [{"label": classes[i], "class_id": i, "probabilities": p}
                   for i, p in zip(probs.argmax(axis=1).tolist(), probs.astype(float).tolist())]
    content = jsonbody.dumps({"arch": entry.name, "model": entry.name, "version": entry.version,
                              "backend": served.name, "classes": list(classes), "predictions": predictions,
                              "model_sha256": served.sha256})
    return Response(content, media_type="application/json", headers={
        "X-Batch-Size": str(result.batch_size), "X-Batch-Requests": str(result.requests),
        "X-Model-Version": str(entry.version)})


async def serve(request: Request, version: int | None) -> Response:
    state = request.app.state
    settings: Settings = state.settings
    backend = backend_choice(request)
    entry = ready_entry(state.registry, request.path_params["model"], version)
    body = jsonbody.predict_body(await request.body(), request.headers.get("content-type"))
    name = backend or settings.default_backend
    if backend is None and name not in entry.backends and entry.backends:
        reason = (f"the default backend {name!r} is unavailable for {entry.name} ({entry.failures.get(name)}); "
                  f"name one of {', '.join(entry.backends)} in ?backend=")
        raise InvalidInput(f"backend: {reason}", field="backend", reason=reason)
    served = entry.backend(name)   # the same version's spec and backend, whatever is published meanwhile
    request.state.metric_labels = (entry.name, name)
    try:  # a small request is decoded right here: a thread hand-over would cost the loop more
        batch = network_input(entry, body, settings, inline=True)
    except inputs.Deferred:
        batch = await run_in_threadpool(network_input, entry, body, settings)
    result = await state.inference.predict_proba(served, batch)
    return answer(entry, served, result)


def ready_entry(registry, model: str, version: int | None = None) -> ModelVersion:
    entry = registry.get(model, version)
    if entry.state == "loading":
        raise NotReady("models are still loading; poll GET /ready", field="backend", reason="loading")
    return entry


@router.post("/predict/{model}", response_model=None, responses=RESPONSES,
             summary="Classify with the served (highest loaded) version of a model",
             openapi_extra={"parameters": [MODEL_PARAM, BACKEND_PARAM], "requestBody": BODY})
async def predict(request: Request) -> Response:
    return await serve(request, None)


@router.post("/predict/{model}/versions/{version}", response_model=None, responses=RESPONSES,
             summary="Classify with one version of a model",
             openapi_extra={"parameters": [MODEL_PARAM, VERSION_PARAM, BACKEND_PARAM], "requestBody": BODY})
async def predict_version(request: Request) -> Response:
    return await serve(request, version_number(request.path_params["version"]))
