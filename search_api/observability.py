"""The outermost middleware: a request id for every request, one access-log line and the request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_api.logging_setup import request_id_var
from search_api.metrics import Metrics

logger = logging.getLogger("search_api.access")

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it is short and harmless in logs and headers; otherwise a new one is made.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "<unmatched>"


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is sane, else a new random id."""
    incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
    return incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The route a request matched (`/documents/{document_id}/file`), never its raw path: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class RequestMiddleware:
    """Give each request an id (echoed in `X-Request-ID`), log it once as it ends, and count it.

    The access log carries method, path (without the query string, which may hold secrets), route, status,
    duration, request id, client address and the non-secret prefix of a valid API key; headers, and so the
    keys themselves, are never logged.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            client = scope.get("client")
            logger.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                    "key_prefix": scope.get("state", {}).get("api_key_prefix"),  # set by auth; never the secret
                },
            )
            request_id_var.reset(token)
