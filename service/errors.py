"""One error type carrying its HTTP status, and the handlers that turn every failure into the same JSON shape.

    {"error": {"status": 422, "code": "invalid_input", "message": "images[3]: ...",
               "field": "images[3]", "index": 3, "reason": "...", "request_id": "..."}}
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service.errors")


class ServiceError(Exception):
    """Base of every error the service answers with; ``status`` is the HTTP status it maps to."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None,
                 reason: str | None = None, status: int | None = None, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index
        self.reason = reason if reason is not None else message
        self.details = details
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self, request_id: str | None = None) -> dict:
        err = {"status": self.status, "code": self.code, "message": self.message, "field": self.field,
               "index": self.index, "reason": self.reason, "request_id": request_id}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class InvalidInput(ServiceError):
    status, code = 422, "invalid_input"


class ModelNotFound(ServiceError):
    status, code = 404, "model_not_found"


class BackendUnavailable(ServiceError):
    status, code = 503, "backend_unavailable"


class NotReady(ServiceError):
    status, code = 503, "not_ready"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class DataUnavailable(ServiceError):
    status, code = 503, "data_unavailable"


class InferenceFailed(ServiceError):
    """The backend raised while computing a batch (the request's input had passed validation)."""
    status, code = 500, "inference_failed"


def item_error(field: str, index: int | None, reason: str, cls: type[ServiceError] = InvalidInput,
               **kw: Any) -> ServiceError:
    """An error about one item of a list field: ``field[index]: reason``."""
    where = f"{field}[{index}]" if index is not None else field
    return cls(f"{where}: {reason}", field=where, index=index, reason=reason, **kw)


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field_from_loc(loc: tuple) -> tuple[str | None, int | None]:
    """``("body", "images", 3, "str")`` -> ``("images[3]", 3)``; the location kind is dropped."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        kind = parts.pop(0)
        if not parts:
            return kind, None
    field, index = "", None
    for p in parts:
        if isinstance(p, int):
            field += f"[{p}]"
            if index is None:
                index = p
        else:
            field += ("." if field else "") + str(p)
    return field or None, index


def validation_error(exc: RequestValidationError) -> ServiceError:
    errors = list(exc.errors())
    if not errors:
        return InvalidInput("invalid request")
    first = errors[0]
    details = [{"field": _field_from_loc(tuple(e.get("loc", ())))[0], "reason": e.get("msg")} for e in errors[:20]]
    if first.get("type") == "json_invalid":
        reason = f"malformed JSON: {(first.get('ctx') or {}).get('error', first.get('msg'))}"
        loc = first.get("loc", ())
        if len(loc) > 1 and isinstance(loc[1], int):
            reason += f" at character {loc[1]}"
        return InvalidInput(reason, field="body", reason=reason, code="malformed_json")
    field, index = _field_from_loc(tuple(first.get("loc", ())))
    reason = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        reason = "field required" if field != "body" else "request body required (JSON)"
    return InvalidInput(f"{field}: {reason}" if field else reason, field=field, index=index, reason=reason,
                        details=details if len(details) > 1 else None)


#: Routes of the standard inference protocols (Open Inference Protocol v2: /v2...; TF Serving REST: /v1/...)
#: answer errors in those protocols' shape, ``{"error": "<message>"}``, and invalid input as their 400.
PROTOCOL_PREFIXES = ("/v2/", "/v1/")


def protocol_error_body(err: ServiceError) -> tuple[dict, int]:
    return {"error": err.message}, 400 if err.status == 422 else err.status


def error_response(err: ServiceError, request: Request | None) -> JSONResponse:
    rid = getattr(request.state, "request_id", None) if request is not None else None
    headers = {"Retry-After": "5"} if err.status == 503 else None
    path = request.url.path if request is not None else ""
    if path == "/v2" or path.startswith(PROTOCOL_PREFIXES):
        body, status = protocol_error_body(err)
        return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse(err.body(rid), status_code=err.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc, request)

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request)

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:  # FastAPI's json.loads raised: say why
            cause = exc.__cause__
            if isinstance(cause, RecursionError):
                reason = "malformed JSON: nested too deeply (the limit is about 1,000 levels; no request needs that many)"
            elif isinstance(cause, UnicodeDecodeError):
                reason = "malformed JSON: the body is not UTF-8 encoded JSON"
            else:
                reason = f"malformed JSON: {type(cause).__name__ if cause else 'unreadable body'}"
            return error_response(InvalidInput(reason, field="body", reason=reason, code="malformed_json"), request)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs"
        resp = error_response(ServiceError(detail, status=exc.status_code, code=code), request)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"fields": {"path": request.url.path}})
        return error_response(ServiceError(f"internal error ({type(exc).__name__}); see the logs"), request)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
