"""POST /predict/{model} (the served version) and /predict/{model}/versions/{version}: class probabilities
for a batch of images, texts or the network's own input tensors, as the model's input spec says."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import inputs
from ..deps import InferenceDep, RegistryDep, SettingsDep
from ..errors import InvalidInput
from ..repository import ModelVersion
from ..schemas import PREDICT_EXAMPLES, BackendName, PredictRequest, PredictResponse, Prediction, error_responses
from ..settings import Settings

router = APIRouter(tags=["predict"])


def network_input(entry: ModelVersion, body: PredictRequest, settings: Settings, inline: bool = False):
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
RESPONSES = {200: {"description": "One prediction per item, in the request's order", "headers": BATCH_HEADERS},
             **error_responses(404, 413, 422, 500, 503)}
ModelParam = Annotated[str, Path(description="A model of the repository (GET /models lists them)",
                                 openapi_examples={a: {"value": a} for a in ("cnn", "rnn", "lstm")})]
BackendParam = Annotated[BackendName | None, Query(
    description="Engine to serve with; default DEFAULT_BACKEND (scratch).",
    openapi_examples={b: {"value": b} for b in ("scratch", "keras")})]
BodyParam = Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)]


async def serve(entry: ModelVersion, body: PredictRequest, backend: BackendName | None, settings: Settings,
                inference, request: Request, response: Response) -> PredictResponse:
    name = (backend or BackendName(settings.default_backend)).value
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
    result = await inference.predict_proba(served, batch)
    response.headers["X-Batch-Size"] = str(result.batch_size)
    response.headers["X-Batch-Requests"] = str(result.requests)
    response.headers["X-Model-Version"] = str(entry.version)
    probs = result.probs
    ids = probs.argmax(axis=1)
    return PredictResponse(
        arch=entry.name, model=entry.name, version=entry.version, backend=served.name, classes=list(served.classes),
        model_sha256=served.sha256,
        predictions=[Prediction(label=served.classes[int(i)], class_id=int(i), probabilities=p)
                     for i, p in zip(ids, probs.astype(float).tolist())])


def _ready_entry(registry, model: str, version=None) -> ModelVersion:
    from ..errors import NotReady

    entry = registry.get(model, version)
    if entry.state == "loading":
        raise NotReady("models are still loading; poll GET /ready", field="backend", reason="loading")
    return entry


@router.post("/predict/{model}", response_model=PredictResponse, responses=RESPONSES,
             summary="Classify with the served (highest loaded) version of a model")
async def predict(model: ModelParam, body: BodyParam, registry: RegistryDep, settings: SettingsDep,
                  inference: InferenceDep, request: Request, response: Response,
                  backend: BackendParam = None) -> PredictResponse:
    return await serve(_ready_entry(registry, model), body, backend, settings, inference, request, response)


@router.post("/predict/{model}/versions/{version}", response_model=PredictResponse, responses=RESPONSES,
             summary="Classify with one version of a model")
async def predict_version(model: ModelParam, version: Annotated[int, Path(ge=1, description="A version number")],
                          body: BodyParam, registry: RegistryDep, settings: SettingsDep, inference: InferenceDep,
                          request: Request, response: Response, backend: BackendParam = None) -> PredictResponse:
    return await serve(_ready_entry(registry, model, version), body, backend, settings, inference, request, response)
