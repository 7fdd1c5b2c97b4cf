"""Pydantic models of every request and response (they are also the OpenAPI schema at /openapi.json)."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema

from .inputs import encode_png_base64


class BackendName(str, Enum):
    scratch = "scratch"
    keras = "keras"


def _example_png() -> str:
    """A real 32x32 PNG (a colour gradient), base64 -- the working example of the OpenAPI docs."""
    r = np.linspace(0, 255, 32, dtype=np.uint8)
    img = np.stack([np.tile(r, (32, 1)), np.tile(r[:, None], (1, 32)), np.full((32, 32), 128, np.uint8)], axis=-1)
    return encode_png_base64(img)


EXAMPLE_PNG_BASE64 = _example_png()
EXAMPLE_NESTED_IMAGE = [[[0.5, 0.25, 0.75] for _ in range(32)] for _ in range(32)]

_NUMBER_01 = {"type": "number", "minimum": 0, "maximum": 1}
_IMAGE_ITEM_SCHEMA = {
    "anyOf": [
        {"type": "string", "title": "base64 PNG or JPEG",
         "description": "A PNG or JPEG file of any size, base64-encoded (a data: URL prefix is accepted); "
                        "converted to RGB, resized to 32x32, scaled to [0, 1]."},
        {"type": "array", "title": "32x32x3 nested list", "minItems": 32, "maxItems": 32,
         "description": "The network's input: 32 rows of 32 RGB pixels, numbers in [0, 1].",
         "items": {"type": "array", "minItems": 32, "maxItems": 32,
                   "items": {"type": "array", "minItems": 3, "maxItems": 3, "items": _NUMBER_01}}},
    ]}
# Validated item by item in service.inputs, which names the item and the reason of any rejection.
ImageItem = Annotated[Any, WithJsonSchema(_IMAGE_ITEM_SCHEMA)]


class PredictRequest(BaseModel):
    """One of ``images`` (image models), ``texts`` (text models with a vectorizer) or ``inputs`` (every
    model: the network's own input tensors), 1..MAX_BATCH items. The OpenAPI document gives each model's
    exact body schema (:mod:`service.openapi`); this model is the union of them, the generic operation's body
    schema. The route itself parses bodies with :func:`service.jsonbody.predict_body` (same rules, C speed)."""
    model_config = ConfigDict(extra="forbid")

    images: list[ImageItem] | None = Field(
        None, description="Image models: each item a base64 PNG/JPEG string or a (height, width, channels) nested list in [0, 1].")
    texts: list[StrictStr] | None = Field(
        None, description="Text models with a vectorizer: strings holding a word. Standardised (lowercase, punctuation "
                          "stripped, split on whitespace) and truncated or zero-padded to the model's sequence length "
                          "exactly as Keras' TextVectorization does: words past the sequence length are ignored.")
    inputs: list[Any] | None = Field(
        None, description="Every model: the network's input tensors as nested lists (float images, integer token ids), "
                          "one per item, of the model's input shape (GET /models).")


PREDICT_EXAMPLES = {
    "cnn_base64_png": {"summary": "cnn: a base64 PNG (POST /predict/cnn)",
                       "value": {"images": [EXAMPLE_PNG_BASE64]}},
    "cnn_nested_list": {"summary": "cnn: a 32x32x3 nested list in [0, 1] (POST /predict/cnn)",
                        "value": {"images": [EXAMPLE_NESTED_IMAGE]}},
    "text": {"summary": "rnn / lstm: texts (POST /predict/lstm)",
             "value": {"texts": ["Makanannya enak dan pelayanannya ramah sekali.",
                                 "Saya kecewa, pesanan datang terlambat dan dingin."]}},
}


class Prediction(BaseModel):
    label: str = Field(description="The most probable class.")
    class_id: int = Field(description="Index of `label` in `classes`.")
    probabilities: list[float] = Field(description="One probability per class, in the order of `classes`.")


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "arch": "lstm", "model": "lstm", "version": 1, "backend": "scratch", "classes": ["negative", "neutral", "positive"],
        "predictions": [{"label": "positive", "class_id": 2, "probabilities": [0.05, 0.1, 0.85]}],
        "model_sha256": "3f1c...e9"}]})

    arch: str = Field(description="The model's name (the field's name from when three archs were served).")
    model: str = Field(description="The model's name.")
    version: int = Field(description="The model version that computed these predictions.")
    backend: BackendName
    classes: list[str]
    predictions: list[Prediction]
    model_sha256: str = Field(description="sha256 (from the manifest, verified at load) of the file this "
                                          "backend served: weights.npz for scratch, model.keras for keras.")


class BackendMetrics(BaseModel):
    accuracy: float
    macro_f1: float


class ParityResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "arch": "rnn", "split": "test", "n": 400, "agreement": 1.0, "max_abs_prob_diff": 2.4e-7,
        "keras": {"accuracy": 0.71, "macro_f1": 0.70}, "scratch": {"accuracy": 0.71, "macro_f1": 0.70},
        "elapsed_s": 0.0004, "cached": True, "computed_in_s": 0.41, "limit": None}]})

    arch: str
    split: Literal["test"] = "test"
    n: int = Field(description="Items compared (the whole test split, or the first `limit`).")
    agreement: float = Field(description="Fraction of items where both backends predict the same class.")
    max_abs_prob_diff: float = Field(description="Largest |p_keras - p_scratch| over all items and classes.")
    keras: BackendMetrics
    scratch: BackendMetrics
    classes: list[str] | None = Field(None, description="The class names, in the order of the confusion matrices' "
                                                        "rows and columns.")
    confusion_matrices: dict[str, list[list[int]]] | None = Field(
        None, description="Per backend (`keras`, `scratch`): counts[true class][predicted class] over the items "
                          "compared.")
    elapsed_s: float = Field(description="Time this request took to answer (near 0 when cached).")
    cached: bool = Field(description="True when the result came from the cache.")
    computed_in_s: float = Field(description="Time the computation took when it ran.")
    limit: int | None = None


class BackendStatus(BaseModel):
    status: Literal["ready", "loading", "unavailable"]
    reason: str | None = Field(None, description="Why the backend is unavailable.")
    load_seconds: float | None = None


class HealthResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "uptime_s": 12.5}]})
    status: Literal["ok"] = "ok"
    uptime_s: float


class ReadyResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ready": True, "state": "loaded", "load_seconds": 6.2,
        "models": {"cnn": {"scratch": {"status": "ready", "reason": None, "load_seconds": 0.1},
                           "keras": {"status": "ready", "reason": None, "load_seconds": 2.3}}}}]})
    ready: bool = Field(description="At least one model version is loaded and nothing is still loading (each backend loaded or failed with its reason).")
    state: Literal["loading", "loaded"]
    load_seconds: float | None = None
    models: dict[str, dict[str, BackendStatus]]


class InputInfo(BaseModel):
    kind: Literal["image", "text", "tensor"]
    shape: list[int] = Field(description="Network input shape without the batch dimension.")
    dtype: str
    sequence_length: int | None = None
    vocabulary_size: int | None = Field(None, description="Token ids must be below this (text models).")
    range: list[float] | None = Field(None, description="Allowed values of `inputs` (images: [0, 1]).")
    request_field: Literal["images", "texts", "inputs"] = Field(description="The main body field.")
    request_fields: list[Literal["images", "texts", "inputs"]] = Field(description="Every body field it accepts.")


class VersionInfo(BaseModel):
    state: Literal["loading", "ready", "failed"]
    reason: str | None = None
    available_backends: list[BackendName]
    weights_sha256: dict[str, str]


class ModelInfo(BaseModel):
    name: str
    arch: str = Field(description="= name (kept from when three archs were served).")
    version: int = Field(description="The version served by default (the highest that loaded).")
    versions: list[int] = Field(description="Every version in the repository (POST /predict/{model}/versions/{v}).")
    state: Literal["loading", "ready", "failed"]
    reason: str | None = Field(None, description="Why the served version failed (state failed).")
    classes: list[str]
    input: InputInfo | None
    backends: dict[str, BackendStatus]
    available_backends: list[BackendName]
    params: int | None
    weights_sha256: dict[str, str] = Field(description="sha256 of each file, from the manifest.")
    metrics: dict[str, Any] | None = Field(None, description="Training metrics from the manifest.")
    config_name: str | None = None
    seed: int | None = None
    source: str | None = Field(None, description="export, converted, converted (cache) or converted (memory).")
    note: str | None = None
    reload_error: str | None = Field(None, description="A newer copy of these files failed to load; this one kept serving.")
    parity: dict[str, Any] | None = Field(None, description="Converted files: scratch vs Keras on random inputs.")
    all_versions: dict[str, VersionInfo] = Field(description="Every version, by number.")


class ModelsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"models": {"rnn": {
        "name": "rnn", "arch": "rnn", "version": 1, "versions": [1], "state": "ready", "reason": None,
        "classes": ["negative", "neutral", "positive"],
        "input": {"kind": "text", "shape": [64], "dtype": "int32", "sequence_length": 64, "vocabulary_size": 1200,
                  "range": None, "request_field": "texts", "request_fields": ["texts", "inputs"]},
        "backends": {"scratch": {"status": "ready", "reason": None, "load_seconds": 0.05}},
        "available_backends": ["scratch"], "params": 120000, "weights_sha256": {"weights.npz": "ab12..."},
        "metrics": {"test": {"keras": {"accuracy": 0.7, "macro_f1": 0.69}}}, "config_name": "default", "seed": 0,
        "source": "export", "note": None, "reload_error": None, "parity": None,
        "all_versions": {"1": {"state": "ready", "reason": None, "available_backends": ["scratch"],
                               "weights_sha256": {"weights.npz": "ab12..."}}}}}}]})
    models: dict[str, ModelInfo]


class RepositoryIndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ready: StrictBool | None = Field(None, description="Only models whose readiness is this (MLServer's filter); "
                                                     "a JSON boolean (0, 1 or \"true\" are refused).")


class RepositoryModel(BaseModel):
    name: str
    version: int | None
    state: Literal["READY", "LOADING", "UNAVAILABLE", "UNLOADED"]
    reason: str | None = None


class RepositoryAction(BaseModel):
    name: str
    action: Literal["load", "unload"]
    versions: list[RepositoryModel]
    seconds: float


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="Machine-readable kind, e.g. invalid_input, malformed_json, model_not_found, "
                                  "backend_unavailable, batch_too_large, payload_too_large, image_too_large, "
                                  "data_unavailable, not_ready.")
    message: str
    field: str | None = Field(None, description="The offending field, with the item index: `images[3]`.")
    index: int | None = Field(None, description="Index of the offending item in its list.")
    reason: str | None = None
    request_id: str | None = None
    details: Any = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "status": 422, "code": "invalid_input", "message": "images[3]: value at [0][5][1] is 1.7; values must be in [0, 1]",
        "field": "images[3]", "index": 3, "reason": "value at [0][5][1] is 1.7; values must be in [0, 1]",
        "request_id": "5b0c6f1e2d..."}}]})
    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict]:
    text = {401: "Missing or wrong bearer token", 403: "ADMIN_TOKEN is not set: the repository endpoints are off",
            404: "Unknown model or version", 413: "Batch, body or image too large", 422: "Invalid input",
            500: "The backend failed while computing the batch (inference_failed)",
            503: "Backend unavailable, models still loading, or test data missing"}
    return {s: {"model": ErrorResponse, "description": text.get(s, "Error")} for s in statuses}
