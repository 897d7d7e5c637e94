"""The HTTP server of `moocsearch serve`: uvicorn with bounded connections (issue 11, slow-loris).

uvicorn bounds a kept-alive connection's idle time (`timeout_keep_alive`), but nothing else: a connection
opened and left silent, or one sending its headers a byte at a time, stayed open for as long as the client
liked (100 s and more in the attack), each holding a slot. `HeaderTimeoutProtocol` closes a connection whose
request line and headers have not all arrived `header_timeout` seconds after it opened, or after the first byte
of a kept-alive connection's next request. `limit_concurrency` answers 503 beyond `max_connections`, and the
listen backlog bounds what the kernel queues.

Written against uvicorn 0.54's h11 protocol (the one uvicorn picks when httptools is not installed, as here);
`server_config` selects it explicitly so that installing httptools changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.main import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from search_api.settings import ApiSettings

__all__ = ["STARTUP_FAILURE", "HeaderTimeoutProtocol", "run_server", "server_config"]
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request's headers (`header_timeout` seconds).

    The timer runs while h11 waits for a request (`their_state` IDLE) and the keep-alive timer does not: from
    the connection's opening, and from the first byte of each later request. It stops once the headers are
    parsed; the body is the application's business (its size limits, and the concurrency limit). On expiry the
    connection is closed, with a 408 when the client had sent part of a request."""

    header_timeout: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._received_since_idle = False

    @classmethod
    def with_timeout(cls, seconds: float) -> type[HeaderTimeoutProtocol]:
        """This protocol with its deadline set (uvicorn instantiates the class itself, with its own arguments)."""
        return type(f"{cls.__name__}{seconds:g}s", (cls,), {"header_timeout": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._received_since_idle = self._received_since_idle or bool(data)
            # The first byte of a kept-alive connection's next request: uvicorn stops its keep-alive timer, so
            # this one takes over.
            self._arm_header_timer()
        super().data_received(data)
        self._track_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._received_since_idle = False
        self._track_headers()

    def _track_headers(self) -> None:
        """Stop the timer once a request's headers are in; a pipelined request already buffered keeps it."""
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()
            self._received_since_idle = False
        elif self.timeout_keep_alive_task is not None and not self._received_since_idle:
            self._cancel_header_timer()  # idle between requests: the keep-alive timeout bounds that

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.logger.info("closed a connection whose request headers took over %gs", self.header_timeout)
        if self._received_since_idle:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def server_config(app: Any, settings: ApiSettings) -> uvicorn.Config:
    """uvicorn's configuration for `app`: our logging (uvicorn's access log off: ours is in the app), the h11
    protocol with the header deadline, the keep-alive timeout, the connection limit and the backlog."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=HeaderTimeoutProtocol.with_timeout(settings.header_timeout_seconds),
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        limit_concurrency=settings.max_connections,
        backlog=settings.backlog,
    )


def run_server(app: Any, settings: ApiSettings) -> bool:
    """Serve `app` until SIGINT or SIGTERM (uvicorn re-raises the signal once shut down, so the exit status tells
    how it ended); False when it could not start (e.g. the port is taken: uvicorn logged why)."""
    server = uvicorn.Server(server_config(app, settings))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return server.started
