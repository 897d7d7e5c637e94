"""API errors: domain errors and HTTP-only ones, mapped to HTTP in one place with the body
{"error": {"code", "message"}}.

A domain error (see search_api/services/errors.py) answers the status of its kind, with its own code; the CLI
maps the same kinds to exit codes (search_api/cli/common.py).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search_api.schemas import ErrorOut
from search_api.services.errors import DOMAIN_ERRORS, ErrorKind, describe

logger = logging.getLogger(__name__)


# The HTTP status of each kind of domain error; every kind has one.
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REFUSED: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.UNSUPPORTED: 415,
    ErrorKind.NOT_READY: 503,
    ErrorKind.NO_SPACE: 507,
    ErrorKind.OVER_QUOTA: 429,
    ErrorKind.MISCONFIGURED: 503,
}
_HEADERS = {ErrorKind.UNAUTHORIZED: {"WWW-Authenticate": "Bearer"}}


class ApiError(Exception):
    """An error only HTTP knows (the body's type, the rate limit...), with its status and a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one error shape of this API."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error shape as a response, for middleware that answers before any route runs."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring the JSON error body for `statuses`; `descriptions` (`s404="..."`) say when."""
    return {
        status: {"model": ErrorOut, "description": descriptions.get(f"s{status}", _DESCRIPTIONS.get(status, "Error."))}
        for status in statuses
    }


# Errors any route can give, declared once on the app: bodies over the limit, throttled clients, bad input.
_DESCRIPTIONS = {
    400: "Malformed request (e.g. an invalid Content-Length).",
    413: "The request body is larger than the configured limit.",
    422: "A parameter or the body failed validation.",
    429: "Too many requests from this API key or IP address; retry after `Retry-After` seconds.",
    500: "An unexpected error; the message hides the details, the log has them.",
    503: "No index generation is loaded yet.",
}


def document_errors(app: FastAPI, unthrottled_paths: Collection[str] = ()) -> None:
    """Make the OpenAPI schema say what a 422 is here, the JSON error body, where FastAPI would document its own
    validation error model (routes with parameters that declare no 422 themselves); and drop the app-wide 429
    from the paths the rate limit never applies to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI caches it: the rewrite below runs on the cached dict, idempotently
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path in unthrottled_paths:
                    operation.get("responses", {}).pop("429", None)
                content = operation.get("responses", {}).get("422", {}).get("content", {}).get("application/json")
                if content and content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                    content["schema"] = {"$ref": "#/components/schemas/ErrorOut"}
                    operation["responses"]["422"]["description"] = _DESCRIPTIONS[422]
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        info = describe(exc)
        if info is None:  # an OSError that is not a full disk: a bug, answered by the catch-all below
            raise exc
        status = HTTP_STATUS[info.kind]
        return JSONResponse(error_body(info.code, info.message), status_code=status, headers=_HEADERS.get(info.kind))

    for error_type in DOMAIN_ERRORS:
        app.add_exception_handler(error_type, _domain_error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request", _validation_message(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)
