"""The HTTP protocol the gateway is served with (ops/runner.py's uvicorn configuration): uvicorn's, bounded where
uvicorn leaves it open.

uvicorn bounds a keep-alive connection's idle time, but nothing bounds how long a client may take to send a
request's headers (a connection that trickles them, or sends nothing at all, is held forever) nor how large they
may grow under httptools. `HeaderDeadlineProtocol` closes such connections (408 / 431) and never touches a request
whose headers arrived: bodies are bounded by http/guards.py, idle keep-alive connections by uvicorn.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT = 10.0  # seconds; DELIVERY_GATEWAY_HEADER_TIMEOUT
MAX_HEADER_BYTES = 64 * 1024  # a request line and headers beyond this are refused (431): bearer tokens are < 8 KiB


def _refusal(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers.

    The clock starts when the connection is made (its first request) and at the first byte of every later one (so
    an idle keep-alive connection is uvicorn's business, not this deadline's); it stops when the headers are
    complete. Past `header_timeout` seconds, or `max_header_bytes` bytes, the connection is answered 408 (431)
    and closed.
    """

    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    max_header_bytes: ClassVar[int] = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One timer at a time, kept across requests: a request whose headers arrive in time neither arms nor
        # cancels one (a timer armed and cancelled per request cost as much as some of the request's own work).
        # When it fires it refuses a request past its deadline, or re-arms for the deadline of the one under way.
        self._header_deadline: asyncio.TimerHandle | None = None
        self._headers_due = 0.0  # loop time by which the awaited headers must be complete
        self._awaiting_headers = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:  # the first byte of a later request on this connection
            self._expect_headers()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # a new request's cycle (not an upgrade)
            cycle.transport = _ResponseWrites(self.transport, self.loop)  # type: ignore[assignment]

    def handle_websocket_upgrade(self) -> None:
        # The connection leaves for the WebSocket protocol: a clock still armed would hold this protocol (its
        # parser and buffers) for up to `header_timeout` seconds after the upgrade, for every new subscriber.
        self._stop_clock()
        super().handle_websocket_upgrade()

    def _expect_headers(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._headers_due = self.loop.time() + self.header_timeout
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_at(self._headers_due, self._headers_too_slow)

    def _stop_clock(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self._awaiting_headers:
            return  # the headers came in time; the next request arms the clock again
        if self.loop.time() < self._headers_due:  # a later request's headers, with time left
            self._header_deadline = self.loop.call_at(self._headers_due, self._headers_too_slow)
            return
        self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        self._stop_clock()
        self._awaiting_headers = False
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never write into another request's response
            self.transport.write(_refusal(status))
            self.transport.close()
        else:
            self.cycle.keep_alive = False  # a pipelined request stalled: close once the current response is sent


class _ResponseWrites:
    """The transport as one request's response cycle writes to it: the status line and headers (the cycle's first
    write) leave together with the first body chunk, in one send instead of two; a first write that nothing
    follows in the same step of the event loop (a stream waiting for its first chunk) leaves at the end of that
    step. Everything else goes straight to the transport, in order."""

    __slots__ = ("_first", "_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._first = True
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._head = data
            self._loop.call_soon(self._flush)
            return
        head, self._head = self._head, None
        if head is None:
            self._transport.write(data)
        else:
            self._transport.writelines((head, data))

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def http_protocol(header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> type[HeaderDeadlineProtocol]:
    """The protocol class a gateway is served with (uvicorn's `http=`), bounded by `header_timeout` seconds."""
    return type("GatewayHttpProtocol", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})
