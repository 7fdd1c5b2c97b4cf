"""The OpenAPI document says exactly what each model accepts: one ``/predict`` operation per model (and per
version), each with that model's body schema, so a schema-valid request is never refused and an invalid one
always is (schemathesis' positive- and negative-data checks).

FastAPI documents the generic routes (``/predict/{model}``); here they are replaced by concrete paths,
rebuilt whenever the repository changes (``repository.generation``). What each schema encodes:
images: a base64 PNG/JPEG (``format: image-base64``; schemathesis learns to make them from
``tests/service/schemathesis_hooks.py``, which ``schemathesis.toml`` loads) or an (H, W, C) nested list in
[0, 1]; texts: strings matching :data:`service.inputs.TEXT_PATTERN`; inputs: nested lists of the input shape
with the dtype's (and value range's) bounds, token ids below the vocabulary size with one id >= 1 per row;
``backend``: the backends that loaded; 1..MAX_BATCH items; exactly one field.
"""
from __future__ import annotations

import copy

import numpy as np
from fastapi import FastAPI

from .backends.base import InputSpec
from .inputs import TEXT_PATTERN

IMAGE_FORMAT = "image-base64"
PREDICT_PATHS = ("/predict/{model}", "/predict/{model}/versions/{version}")


def _nested(shape: tuple[int, ...], leaf: dict, row: dict | None = None) -> dict:
    schema = leaf
    for i, size in enumerate(reversed(shape)):
        schema = {"type": "array", "minItems": size, "maxItems": size, "items": schema}
        if i == 0 and row:
            schema.update(row)
    return schema


def leaf_schema(spec: InputSpec) -> dict:
    if spec.is_integer:
        info = np.iinfo(spec.numpy_dtype)
        if spec.kind == "text":
            top = (spec.vocabulary_size - 1) if spec.vocabulary_size else int(info.max)
            return {"type": "integer", "minimum": 0, "maximum": top}
        return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    if spec.value_range is not None:
        return {"type": "number", "minimum": spec.value_range[0], "maximum": spec.value_range[1]}
    finfo = np.finfo(spec.numpy_dtype)
    return {"type": "number", "minimum": -float(finfo.max), "maximum": float(finfo.max)}


def body_schema(entry, max_batch: int) -> dict:
    spec: InputSpec = entry.input_spec
    listing = {"type": "array", "minItems": 1, "maxItems": max_batch}
    props: dict[str, dict] = {}
    shape = "x".join(map(str, spec.shape))
    if "images" in entry.request_fields:
        h, w, c = spec.shape
        pixel = {"type": "number", "minimum": 0, "maximum": 1}
        items = [_nested(spec.shape, pixel)]
        if c in (1, 3, 4):
            items.insert(0, {"type": "string", "format": IMAGE_FORMAT, "title": "base64 PNG or JPEG",
                             "description": f"A PNG or JPEG file of any size, base64 (a data: URL prefix is accepted); "
                                            f"converted to {c} channel(s), resized to {h}x{w}, scaled to [0, 1]."})
        props["images"] = {**listing, "items": {"anyOf": items} if len(items) > 1 else items[0],
                           "description": f"Images: base64 PNG/JPEG files or {shape} nested lists in [0, 1]."}
    if "texts" in entry.request_fields:
        props["texts"] = {**listing, "items": {"type": "string", "pattern": TEXT_PATTERN},
                          "description": "Texts holding at least one word (a character that is neither ASCII "
                                         "whitespace nor punctuation); standardised and truncated or padded to "
                                         f"{spec.sequence_length} tokens as Keras' TextVectorization does."}
    row = {"contains": {"type": "integer", "minimum": 1}} if spec.kind == "text" else None
    what = {"image": f"{shape} pixels", "text": f"{spec.sequence_length} token ids (0 = padding)",
            "tensor": f"{shape} values"}[spec.kind]
    props["inputs"] = {**listing, "items": _nested(spec.shape, leaf_schema(spec), row),
                       "description": f"The network's own input, {spec.dtype}: {what} per item."}
    fields = [f for f in ("images", "texts", "inputs") if f in props]
    schema = {"type": "object", "title": f"PredictRequest[{entry.name} v{entry.version}]", "properties": props,
              "additionalProperties": False}
    if len(fields) == 1:
        schema["required"] = fields
    else:
        schema["oneOf"] = [{"required": [f]} for f in fields]
    return schema


def examples(entry) -> dict:
    """A working request per accepted field (each is sent by tests/service/test_contract.py)."""
    from .schemas import EXAMPLE_PNG_BASE64

    spec: InputSpec = entry.input_spec
    out = {}
    if "images" in entry.request_fields:
        if spec.shape[-1] in (1, 3, 4):
            out["base64_png"] = {"summary": "a base64 PNG (any size; resized)", "value": {"images": [EXAMPLE_PNG_BASE64]}}
        out["nested_list"] = {"summary": f"a {'x'.join(map(str, spec.shape))} nested list in [0, 1]",
                              "value": {"images": [np.full(spec.shape, 0.5).tolist()]}}
    if "texts" in entry.request_fields:
        out["text"] = {"summary": "texts", "value": {"texts": ["Makanannya enak dan pelayanannya ramah sekali.",
                                                              "Saya kecewa, pesanan datang terlambat."]}}
    if spec.kind == "text":
        ids = [1] + [0] * (spec.sequence_length - 1)
        out["token_ids"] = {"summary": "token ids (1 = [UNK], 0 = padding)", "value": {"inputs": [ids]}}
    elif spec.kind == "image":
        out["inputs"] = {"summary": "the network's input", "value": {"inputs": [np.full(spec.shape, 0.5).tolist()]}}
    else:
        out["inputs"] = {"summary": "the network's input (zeros)",
                         "value": {"inputs": [np.zeros(spec.shape, dtype=spec.numpy_dtype).tolist()]}}
    return out


def _operation(template: dict, entry, name: str, version: int | None, settings) -> dict:
    op = copy.deepcopy(template)
    available = list(entry.backends)
    default_ok = settings.default_backend in available
    params = []
    for p in op.get("parameters", []):
        if p.get("in") == "path":
            continue
        if p.get("name") == "backend":
            p["schema"] = {"type": "string", "enum": available}
            p["required"] = not default_ok
            p["examples"] = {b: {"value": b} for b in available}
            p["description"] = (f"Engine to serve with: {', '.join(available)}"
                                + (f" (default {settings.default_backend})" if default_ok else " (required: the "
                                   f"default {settings.default_backend} backend is unavailable for this model)"))
        params.append(p)
    op["parameters"] = params
    suffix = "" if version is None else f"_v{version}"
    op["operationId"] = f"predict_{name}{suffix}".replace("-", "_").replace(".", "_")
    op["summary"] = f"Classify with {name}" + (f" version {version}" if version else f" (version {entry.version})")
    content = op.setdefault("requestBody", {}).setdefault("content", {}).setdefault("application/json", {})
    content["schema"] = body_schema(entry, settings.max_batch)
    content["examples"] = examples(entry)
    return op


def specialise(doc: dict, registry, settings) -> dict:
    """``doc`` with the generic /predict paths replaced by one operation per model and loaded version."""
    doc = copy.deepcopy(doc)
    paths = doc.get("paths", {})
    templates = {p: paths.pop(p, {}).get("post") for p in PREDICT_PATHS}
    if registry is None or templates[PREDICT_PATHS[0]] is None:
        return doc
    if settings.admin_token:  # unset, no credentials can work: the endpoints answer 403 whatever is sent
        doc.setdefault("components", {}).setdefault("securitySchemes", {})["adminToken"] = {
            "type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"}
        for path, item in paths.items():
            if path.startswith("/repository/"):
                for op in item.values():
                    op["security"] = [{"adminToken": []}]
    for name, versions in sorted(registry.models.items()):
        served = registry.entries.get(name)
        if served is not None and served.ready and served.input_spec is not None:
            paths[f"/predict/{name}"] = {"post": _operation(templates[PREDICT_PATHS[0]], served, name, None, settings)}
        for version, entry in sorted(versions.items()):
            if entry.ready and entry.input_spec is not None and templates[PREDICT_PATHS[1]] is not None:
                paths[f"/predict/{name}/versions/{version}"] = {
                    "post": _operation(templates[PREDICT_PATHS[1]], entry, name, version, settings)}
    return doc


def install_openapi(app: FastAPI) -> None:
    generic = app.openapi
    cache: dict = {}

    def openapi() -> dict:
        registry = getattr(app.state, "registry", None)
        key = (id(registry), getattr(registry, "generation", None))
        if cache.get("key") != key:
            app.openapi_schema = None
            cache["doc"] = specialise(generic(), registry, app.state.settings)
            cache["key"] = key
        app.openapi_schema = cache["doc"]
        return cache["doc"]

    app.openapi = openapi
