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

The protocol routes get the same treatment (their generic ``{name}`` operations are replaced by one operation
per model and version, the generic routes stay served): ``POST /v2/models/<m>[/versions/<v>]/infer`` documents
the JSON form of one tensor of batch 1 -- ``shape`` fixed to ``[1, *spec shape]`` with ``data`` nested exactly
so (values as above), or BYTES ``[1]`` texts / base64 image files -- and ``POST /v1/models/<m>[/versions/<v>]:predict``
``instances`` (row format) or ``inputs`` (columnar), 1..MAX_BATCH rows of exactly the spec shape, text strings or
``{"b64": ...}`` image files. Binary tensor data (Triton's extension) is still accepted, but documented in the
description only: a generated octet-stream body is not a request anyone can make valid by a schema.
"""
from __future__ import annotations

import copy

import numpy as np
from fastapi import FastAPI

from .backends.base import InputSpec
from .inputs import TEXT_PATTERN

IMAGE_FORMAT = "image-base64"
PREDICT_PATHS = ("/predict/{model}", "/predict/{model}/versions/{version}")
V2_PATHS = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
TF_PATHS = ("/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}:predict")


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


def _vocabulary(entry) -> int | None:
    spec = entry.input_spec
    if spec.vocabulary_size:
        return spec.vocabulary_size
    return len(entry.vectorizer.vocabulary) if getattr(entry, "vectorizer", None) is not None else None


def _token_ids(entry, vocabulary: int | None) -> tuple[dict, dict]:
    """(one token id: below ``vocabulary``, a row's rule: at least one id >= 1, not all padding)."""
    top = (vocabulary or np.iinfo(entry.input_spec.numpy_dtype).max + 1) - 1
    return {"type": "integer", "minimum": 0, "maximum": int(top)}, {"contains": {"type": "integer", "minimum": 1}}


def _text_item() -> dict:
    return {"type": "string", "pattern": TEXT_PATTERN}


def _image_file(entry) -> dict | None:
    spec = entry.input_spec
    if spec.kind != "image" or spec.shape[-1] not in (1, 3, 4):
        return None
    return {"type": "string", "format": IMAGE_FORMAT, "title": "base64 PNG or JPEG"}


def _row(entry) -> dict:
    """One item of the network's own input (its spec shape), as the protocols' numeric tensors hold it."""
    spec = entry.input_spec  # TF Serving's rows go through /predict's `inputs` rules (the spec's vocabulary)
    return _nested(spec.shape, *_token_ids(entry, spec.vocabulary_size)) if spec.kind == "text" else \
        _nested(spec.shape, leaf_schema(spec))


def _backend_parameter(entry, settings) -> tuple[dict, bool]:
    """(schema of a ``backend`` choice among the loaded backends, whether it must be given)."""
    available = list(entry.backends)
    return {"type": "string", "enum": available}, settings.default_backend not in available


SCALAR = {"type": ["string", "boolean", "integer", "number"]}


def _parameters(known: dict, refused: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> dict:
    """A protocol ``parameters`` object as the server reads it: ``known`` keys with their rules, any other key
    a scalar (ignored), ``refused`` keys (extensions not supported) absent; may be null unless keys are required."""
    schema = {"type": "object", "properties": known, "additionalProperties": SCALAR}
    if refused:
        schema["propertyNames"] = {"not": {"enum": list(refused)}}
    if required:
        schema["required"] = list(required)
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _tensor_data(shape: list[int], leaf: dict, row: dict | None = None) -> dict:
    """``data`` nested exactly as ``shape``, or flat row-major (both are the protocol's)."""
    nested = _nested(tuple(shape), leaf, row)
    if len(shape) == 1:
        return nested
    flat = {"type": "array", "minItems": int(np.prod(shape)), "maxItems": int(np.prod(shape)), "items": leaf}
    if row and shape[0] == 1:
        flat.update(row)
    return {"anyOf": [nested, flat]}


def v2_body_schema(entry, settings) -> dict:
    """One v2 input tensor of batch 1 the model takes, in JSON (shape fixed, data nested or flat);
    ``parameters.backend`` among the loaded backends. Objects take other keys, which the server ignores."""
    from .protocols import network

    spec = entry.input_spec
    tensors = []
    for name in network.input_names(entry):
        if name == network.TEXT_INPUT:
            tensors.append((name, ["BYTES"], [1], _tensor_data([1], _text_item())))
            continue
        numbers = [d for d in network.accepted_datatypes(spec, name) if d != "BYTES"]
        if spec.kind == "text":  # v2 checks ids against the vocabulary the model has (ModelRef.vocabulary_size)
            leaf, row = _token_ids(entry, _vocabulary(entry))
        else:
            leaf, row = leaf_schema(spec), None
        tensors.append((name, numbers, [1, *spec.shape], _tensor_data([1, *spec.shape], leaf, row)))
        if name == network.IMAGE_INPUT and _image_file(entry) is not None:
            tensors.append((name, ["BYTES"], [1], _tensor_data([1], _image_file(entry))))
    variants = [{"type": "object", "required": ["name", "datatype", "shape", "data"],
                 "properties": {"name": {"const": name}, "datatype": {"enum": datatypes},
                                "shape": {"const": shape}, "data": data,
                                "parameters": _parameters({}, ("binary_data_size", "shared_memory_region"))}}
                for name, datatypes, shape, data in tensors]
    backend, required = _backend_parameter(entry, settings)
    outputs = {"type": "array", "items": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"enum": [network.PROBABILITIES, network.LABELS]},
                       "parameters": _parameters({"binary_data": {"type": "boolean"}},
                                                 ("classification", "shared_memory_region"))}}}
    return {"type": "object", "title": f"InferenceRequest[{entry.name} v{entry.version}]",
            "required": ["inputs"] + (["parameters"] if required else []),
            "properties": {
                "id": {"type": ["string", "null"]},
                "parameters": _parameters({"backend": backend, "binary_data_output": {"type": "boolean"}}, (),
                                          ("backend",) if required else ()),
                "inputs": {"type": "array", "minItems": 1, "maxItems": 1,
                           "items": variants[0] if len(variants) == 1 else {"oneOf": variants}},
                "outputs": {"anyOf": [outputs, {"type": "null"}]}}}


def tf_body_schema(entry, settings) -> dict:
    """TF Serving rows the model takes: ``instances`` (row format) or ``inputs`` (columnar), never both,
    1..MAX_BATCH items of exactly the spec shape (texts: all strings or all token ids). Other keys are ignored."""
    spec = entry.input_spec
    batch = {"type": "array", "minItems": 1, "maxItems": settings.max_batch}
    kinds = [_row(entry)]
    if spec.kind == "text" and getattr(entry, "vectorizer", None) is not None:
        kinds.insert(0, _text_item())
    if _image_file(entry) is not None:
        kinds.append({"type": "object", "required": ["b64"], "additionalProperties": False,
                      "properties": {"b64": _image_file(entry)}})
    if spec.kind == "image" and len(kinds) > 1:  # images: nested lists and files may be mixed
        rows = {**batch, "items": {"anyOf": kinds}}
    else:  # texts: every item a string, or every item token ids
        rows = {"oneOf": [{**batch, "items": k} for k in kinds]} if len(kinds) > 1 else {**batch, "items": kinds[0]}
    null = {"type": "null"}
    return {"type": "object", "title": f"TFPredictRequest[{entry.name} v{entry.version}]",
            "properties": {"signature_name": {"enum": ["serving_default", "", None]}},
            "oneOf": [{"required": ["instances"], "properties": {
                          "instances": {**rows, "description": "Row format: one item per instance."},
                          "inputs": null}},
                      {"required": ["inputs"], "properties": {
                          "inputs": {**rows, "description": "Columnar format: the batch."}, "instances": null}}]}


def _protocol_operation(template: dict, entry, name: str, version: int | None, settings, prefix: str,
                        body) -> dict:
    op = copy.deepcopy(template)
    params = []
    for p in op.get("parameters", []):
        if p.get("in") == "path":
            continue
        if p.get("name") == "backend":
            p["schema"], p["required"] = _backend_parameter(entry, settings)
        params.append(p)
    op["parameters"] = params
    suffix = "" if version is None else f"_v{version}"
    op["operationId"] = f"{prefix}_{name}{suffix}".replace("-", "_").replace(".", "_")
    op["summary"] = f"{op.get('summary', prefix)}: {name}" + (f" version {version}" if version else "")
    content = op.setdefault("requestBody", {}).setdefault("content", {})
    binary = content.pop("application/octet-stream", None)
    if binary is not None:
        op["description"] = (op.get("description", "") + "\n\nAlso accepted: Triton's binary tensor data "
                             "extension (`application/octet-stream`, header Inference-Header-Content-Length).").strip()
    content["application/json"] = {"schema": body(entry, settings)}
    return op


def _per_model(paths: dict, registry, templates: dict, pattern: tuple[str, str], build) -> None:
    """Add ``build(template, entry, name, version)`` at each model's (and loaded version's) concrete path."""
    if templates[pattern[0]] is None:
        return
    for name, versions in sorted(registry.models.items()):
        served = registry.entries.get(name)
        if served is not None and served.ready and served.input_spec is not None:
            paths[pattern[0].replace("{name}", name).replace("{model}", name)] = {
                "post": build(templates[pattern[0]], served, name, None)}
        for version, entry in sorted(versions.items()):
            if entry.ready and entry.input_spec is not None and templates[pattern[1]] is not None:
                path = pattern[1].replace("{name}", name).replace("{model}", name).replace("{version}", str(version))
                paths[path] = {"post": build(templates[pattern[1]], entry, name, version)}


def specialise(doc: dict, registry, settings) -> dict:
    """``doc`` with the generic /predict, v2 infer and TF Serving predict paths replaced by one operation per
    model and loaded version."""
    doc = copy.deepcopy(doc)
    paths = doc.get("paths", {})
    templates = {p: (paths.pop(p, None) or {}).get("post") for p in PREDICT_PATHS + V2_PATHS + TF_PATHS}
    if registry is None or templates[PREDICT_PATHS[0]] is None:
        return doc
    if settings.admin_token:  # unset, no credentials can work: the endpoints answer 403 whatever is sent
        doc.setdefault("components", {}).setdefault("securitySchemes", {})["adminToken"] = {
            "type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"}
        for path, item in paths.items():
            if path.startswith("/repository/"):
                for op in item.values():
                    op["security"] = [{"adminToken": []}]
    _per_model(paths, registry, templates, PREDICT_PATHS,
               lambda t, e, n, v: _operation(t, e, n, v, settings))
    _per_model(paths, registry, templates, V2_PATHS,
               lambda t, e, n, v: _protocol_operation(t, e, n, v, settings, "v2_infer", v2_body_schema))
    _per_model(paths, registry, templates, TF_PATHS,
               lambda t, e, n, v: _protocol_operation(t, e, n, v, settings, "tfserving_predict", tf_body_schema))
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
