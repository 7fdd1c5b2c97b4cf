"""POST /predict/{arch}: class probabilities for a batch of images (cnn) or texts (rnn, lstm)."""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import inputs
from ..backends.base import Backend
from ..deps import InferenceDep, RegistryDep, SettingsDep
from ..errors import InvalidInput, item_error
from ..registry import ARCHS
from ..schemas import PREDICT_EXAMPLES, BackendName, PredictRequest, PredictResponse, Prediction, error_responses
from ..settings import Settings

router = APIRouter(tags=["predict"])


def network_input(backend: Backend, body: PredictRequest, settings: Settings, inline: bool = False) -> np.ndarray:
    """The request's items -> the backend's network input; raises a 4xx naming the bad field and item.

    ``inline``: the call runs on the event loop, so it raises ``inputs.Deferred`` as soon as it meets more
    than a small request's work (many items, a big image, long texts)."""
    wanted, other = ("images", "texts") if backend.input_spec.kind == "image" else ("texts", "images")
    if getattr(body, other) is not None:
        reason = f"the {backend.arch} model takes {wanted!r}, not {other!r}"
        raise InvalidInput(f"{other}: {reason}", field=other, reason=reason)
    items = getattr(body, wanted)
    if items is None:
        reason = f"field required: the {backend.arch} model takes {wanted!r}"
        raise InvalidInput(f"{wanted}: {reason}", field=wanted, reason=reason)
    inputs.check_batch(items, wanted, settings.max_batch)
    if wanted == "images":
        return inputs.decode_images(items, settings.max_image_pixels, inline=inline)
    if inline:
        inputs.inline_size_ok(items, wanted)
    ids = backend.encode_texts(inputs.check_texts(items))
    empty = np.flatnonzero(~ids.any(axis=1))
    if len(empty):
        raise item_error("texts", int(empty[0]), "no words left after standardisation (lowercase, punctuation "
                                                 "stripped, split on whitespace); send at least one word")
    return ids


BATCH_HEADERS = {
    "X-Batch-Size": {"description": "Items in the forward pass that served this request (more than the request's "
                                    "own items when concurrent requests were merged: dynamic batching).",
                     "schema": {"type": "integer", "minimum": 1}},
    "X-Batch-Requests": {"description": "Requests merged into that forward pass.",
                         "schema": {"type": "integer", "minimum": 1}},
}


@router.post("/predict/{arch}", response_model=PredictResponse,
             responses={200: {"description": "One prediction per item, in the request's order",
                              "headers": BATCH_HEADERS}, **error_responses(404, 413, 422, 500, 503)},
             summary="Classify images (cnn) or texts (rnn, lstm)")
async def predict(
    arch: Annotated[str, Path(description="cnn, rnn or lstm (any other: 404 listing these)",
                                          json_schema_extra={"enum": ["cnn", "rnn", "lstm"]},
                                          openapi_examples={a: {"value": a} for a in ("cnn", "rnn", "lstm")})],
    body: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)],
    registry: RegistryDep,
    settings: SettingsDep,
    inference: InferenceDep,
    request: Request,
    response: Response,
    backend: Annotated[BackendName | None, Query(
        description="Engine to serve with; default DEFAULT_BACKEND (scratch).",
        openapi_examples={b: {"value": b} for b in ("scratch", "keras")})] = None,
) -> PredictResponse:
    name = (backend or BackendName(settings.default_backend)).value
    if arch in ARCHS:
        request.state.metric_labels = (arch, name)
    served = registry.backend(arch, name)
    try:  # a small request is decoded right here: a thread hand-over would cost the loop more
        batch = network_input(served, body, settings, inline=True)
    except inputs.Deferred:
        batch = await run_in_threadpool(network_input, served, body, settings)
    result = await inference.predict_proba(served, batch)
    response.headers["X-Batch-Size"] = str(result.batch_size)
    response.headers["X-Batch-Requests"] = str(result.requests)
    probs = result.probs
    ids = probs.argmax(axis=1)
    return PredictResponse(
        arch=arch, backend=served.name, classes=list(served.classes), model_sha256=served.sha256,
        predictions=[Prediction(label=served.classes[int(i)], class_id=int(i), probabilities=p)
                     for i, p in zip(ids, probs.astype(float).tolist())])
