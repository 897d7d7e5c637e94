"""Abuse limits applied before any route runs: request body size (413) and per-client request rate (429).

Both are pure ASGI middleware, so they work on the raw message stream: a body is counted while it arrives (with
or without Content-Length) and refused as soon as it passes the limit, before a route spools it to disk.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from search_api.auth import presented_key
from search_api.errors import error_response

# Routes whose bodies may be as large as an upload; every other route gets the small request limit.
UPLOAD_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", "/documents")})
# Probes and scrapes that must keep answering when a client is throttled.
UNLIMITED_PATHS: frozenset[str] = frozenset({"/health", "/ready", "/metrics"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes its limit; the app's HTTP error handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies over the limit of their route with 413, counting bytes as they stream in."""

    def __init__(self, app: ASGIApp, request_limit: int, upload_limit: int) -> None:
        self.app = app
        self.request_limit = request_limit
        self.upload_limit = upload_limit

    def limit_for(self, scope: Scope) -> int:
        """The body limit of the route a request is for."""
        path = scope["path"].rstrip("/") or "/"
        return self.upload_limit if (scope["method"], path) in UPLOAD_ROUTES else self.request_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
                return
            if int(declared) > limit:  # refused before a byte of the body is read
                await error_response(413, "too_large", BodyTooLarge(limit).detail)(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside a route's error handling (a background task, a middleware)
            if started:
                raise
            await error_response(413, "too_large", exc.detail)(scope, receive, send)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per client: `rate` tokens a second up to `burst`; a request takes one token.

    Buckets of clients not seen for a while are forgotten first once `max_clients` are tracked, so a flood of
    distinct clients costs bounded memory.
    """

    def __init__(
        self, rate: float, burst: int, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """Take a token for `client`: 0 when allowed, else the seconds until a token will be available."""
        bucket = self._refilled(client)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def wait(self, client: str) -> float:
        """The seconds until `client` has a token (0: it has one now), taking nothing."""
        bucket = self._refilled(client)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate

    def _refilled(self, client: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return bucket


def client_identity(scope: Scope) -> str:
    """Who a request counts against: the hash of its API key when it presents one, else its IP address.

    The key is not checked here (authentication does that); hashing keeps it out of memory dumps and logs.
    """
    key = presented_key(Request(scope))
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return "ip:" + _address(scope)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answer 429 with Retry-After to a client (key or IP) that exceeds its token bucket; others go on.

    Keys are counted by their hash before anyone checks them, so a client could mint a fresh bucket with every
    made-up key. Each `401` therefore also takes a token from its IP address's failed-key bucket, and requests
    with a key from an address whose failed-key bucket is empty get `429` until it refills.
    """

    def __init__(
        self,
        app: ASGIApp,
        rate: float,
        burst: int,
        exempt_paths: Collection[str] = UNLIMITED_PATHS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst, clock=clock) if rate > 0 else None
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        buckets = self.buckets
        identity = client_identity(scope)
        failed_keys = "failed-keys:" + _address(scope)
        keyed = identity.startswith("key:")
        wait = max(buckets.wait(failed_keys), buckets.take(identity)) if keyed else buckets.take(identity)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            message = f"too many requests; retry in {retry_after} s"
            await error_response(429, "rate_limited", message, {"Retry-After": str(retry_after)})(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if keyed and message["type"] == "http.response.start" and message["status"] == 401:
                buckets.take(failed_keys)
            await send(message)

        await self.app(scope, receive, counting_send)
