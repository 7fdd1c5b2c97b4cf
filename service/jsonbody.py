"""JSON in and out of the hot path: a request body parsed at C speed (orjson) into a :class:`PredictBody`, with
the service's 4xx naming the field and the reason for anything else, and responses encoded by orjson.

Why not a pydantic body model: FastAPI validating ``PredictRequest`` and resolving the route's dependencies
was a fifth of a single-text request's server CPU; the fields' item rules live in :mod:`service.inputs`,
which names the item and the reason of any rejection (the OpenAPI document still gives each model's exact
body, :mod:`service.openapi`).

orjson refuses what Python's parser accepts (``NaN``, ``Infinity``, ``1e400`` as inf): only those bodies take
the slow path through :func:`json.loads`, so that the item check can name the value at fault; a body nested
deeper than orjson's limit (1,024 levels) is refused as such (:func:`too_deep`), as is one that would exhaust
Python's recursion (the protocols' parsers).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from .errors import InvalidInput
from .inputs import _json_type as json_type

FIELDS = ("images", "texts", "inputs")


def malformed(reason: str) -> InvalidInput:
    reason = f"malformed JSON: {reason}"
    return InvalidInput(reason, field="body", reason=reason, code="malformed_json")


def too_deep() -> InvalidInput:
    """JSON nested deeper than the parser goes (orjson: 1,024 levels; Python's json: about 1,000)."""
    reason = "malformed JSON: nested too deeply (the limit is about 1,000 levels; no request needs that many)"
    return InvalidInput(reason, field="body", reason=reason, code="malformed_json")


def loads(raw: bytes):
    """``raw`` -> its JSON value; raises a 422 ``malformed_json`` naming the reason (syntax and where, not
    UTF-8, nested too deep, empty)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise too_deep() from None
    if not raw.strip():
        reason = "request body required (JSON)"
        raise InvalidInput(reason, field="body", reason=reason)
    try:  # NaN, Infinity, 1e400: Python's parser reads them, the item checks name them
        return json.loads(raw)
    except RecursionError:
        raise too_deep() from None
    except UnicodeDecodeError:
        raise malformed("the body is not UTF-8 encoded JSON") from None
    except ValueError as exc:
        raise malformed(str(exc)) from None


def is_json(content_type: str | None) -> bool:
    """FastAPI's rule: no Content-Type, ``application/json`` or ``application/<anything>+json``."""
    if not content_type:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@dataclass(frozen=True)
class PredictBody:
    """A ``/predict`` body: the list fields sent (None: not sent, or sent as null; ``sent`` tells which)."""
    images: list | None
    texts: list | None
    inputs: list | None
    sent: frozenset[str]


def predict_body(raw: bytes, content_type: str | None = None) -> PredictBody:
    """The bytes of a ``/predict`` request -> :class:`PredictBody`; a 422 naming ``body`` or the field that is
    not a list, or the unknown field."""
    if not is_json(content_type):
        reason = f"send the body as JSON (Content-Type: application/json), received Content-Type {content_type}"
        raise InvalidInput(f"body: {reason}", field="body", reason=reason)
    value = loads(raw)
    if not isinstance(value, dict):
        reason = f"must be a JSON object with one of {', '.join(map(repr, FIELDS))}, received {json_type(value)}"
        raise InvalidInput(f"body: {reason}", field="body", reason=reason)
    extra = next((k for k in value if k not in FIELDS), None)
    if extra is not None:
        reason = f"unknown field; the body takes {', '.join(map(repr, FIELDS))}"
        raise InvalidInput(f"{extra}: {reason}", field=extra, reason=reason)
    for field, items in value.items():
        if items is not None and not isinstance(items, list):
            reason = f"must be a list, received {json_type(items)}"
            raise InvalidInput(f"{field}: {reason}", field=field, reason=reason)
    return PredictBody(value.get("images"), value.get("texts"), value.get("inputs"), frozenset(value))


def dumps(value) -> bytes:
    """JSON bytes of plain Python values (dicts, lists, str, int, float, None)."""
    return orjson.dumps(value)
