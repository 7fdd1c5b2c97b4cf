"""Pure ASGI middlewares: request id + access log (outermost), Prometheus request metrics, and the request body
size limit."""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time

from .errors import PayloadTooLarge
from .log import request_id_var

log = logging.getLogger("service.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_ID_PREFIX = os.urandom(8).hex()  # per process (uvicorn workers are spawned, each imports this anew)
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """32 hex characters, unique across processes: a random per-process prefix and a counter (uuid4 read
    os.urandom on every request: ~3 % of a single-text request's server CPU)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


class RequestContextMiddleware:
    """Takes ``X-Request-ID`` from the request (or makes one), echoes it in the response and logs one JSON
    line per request with its status and latency."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        rid = given if given and _VALID_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        status = {"code": 500}
        t0 = time.perf_counter()

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            latency_ms = (time.perf_counter() - t0) * 1000
            query = scope.get("query_string", b"").decode("latin-1")
            log.info("request", extra={"fields": {
                "request_id": rid, "method": scope.get("method"),
                "path": scope.get("path") + (f"?{query}" if query else ""),
                "status": status["code"], "latency_ms": round(latency_ms, 3),
                "client": (scope.get("client") or ("", 0))[0]}})
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with a 413, counting the bytes actually received (a small or absent
    ``Content-Length`` does not get a larger body through); the accepted body is replayed to the app."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, send, int(declared))
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._reject(scope, send, total, at_least=True)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, send, size: int, at_least: bool = False) -> None:
        reason = (f"request body is {'more than ' if at_least else ''}{size} bytes; "
                  f"the limit is MAX_BODY_BYTES={self.max_bytes}")
        err = PayloadTooLarge(reason, field="body", reason=reason)
        payload = json.dumps(err.body(scope.get("state", {}).get("request_id"))).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


class MetricsMiddleware:
    """Counts every HTTP request in :class:`service.metrics.Metrics` by method, route template (``/predict/{arch}``,
    never the raw path, so the label set stays bounded) and status, with its latency. A route that sets
    ``request.state.metric_labels = (arch, backend)`` is also counted per arch and backend."""

    def __init__(self, app, metrics, routes) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's route list, consulted when routing never ran (a 413 from the body limit)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}  # an exception escaping the app is answered with a 500 by the outer handler
        t0 = time.perf_counter()

        async def send_with_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            labels = (scope.get("state") or {}).get("metric_labels") or (None, None)
            self.metrics.observe_request(scope.get("method", ""), self._route(scope), status["code"],
                                         time.perf_counter() - t0, *labels)

    def _route(self, scope) -> str:
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return route.path
        return _route_template(self.routes, scope) or "unmatched"


def _route_template(routes, scope) -> str | None:
    """The path template of the route ``scope`` would be routed to (included routers searched too)."""
    from starlette.routing import Match

    for candidate in routes:
        if candidate.matches(scope)[0] != Match.FULL:
            continue
        if isinstance(getattr(candidate, "path", None), str):
            return candidate.path
        inner = getattr(candidate, "original_router", None) or getattr(candidate, "app", None)
        found = _route_template(getattr(inner, "routes", ()), scope)
        if found:
            return found
    return None
