"""GETs over kept-alive HTTP/1.1 connections with less per-call work than aiohttp's client session: the request is
written as bytes in one call and the answer parsed by httptools (the parser uvicorn serves with), with no request or
response objects, URL objects, header multidicts or timer re-arming per chunk in between.

A cold chat screen sends 53 GETs, 50 of them at once; their CPU is on its critical path (while the second round
leaves, and as its answers come back). Measured against the emulator, 50 parallel Receipts lists with their JSON
parsed: about 8.9 ms of CPU through an aiohttp session, 2.8 ms this way.

The same contract as the aiohttp exchange it stands in for (`GatewayHttpClient._attempt`): a connect that takes
longer than the connect timeout raises `aiohttp.ConnectionTimeoutError`, an answer silent for longer than the read
timeout `aiohttp.SocketTimeoutError`, a refused or dropped connection or an unreadable answer an
`aiohttp.ClientConnectionError`, so retries, the breaker and the metrics see what they saw. No redirect is followed,
no proxy used (as the session: `trust_env` off), no compression asked for; TLS verifies as Python's default context.
An answer without a length (neither Content-Length nor chunked) ends where its connection does. A connection goes
back to the pool only after a complete answer that allows keeping it; one idle for longer than
`KEEPALIVE` seconds, or closed by the server, is not reused (and closed on the next call for its origin). An
informational answer (1xx) is skipped; a second answer to one request ends its connection. Never used for anything but
GET.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit

import aiohappyeyeballs
import aiohttp
import httptools
from multidict import CIMultiDict

KEEPALIVE = 15.0  # seconds an idle connection is kept for reuse (aiohttp's default keep-alive timeout)
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried alongside (aiohttp's default)
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "?/:@"

Origin = tuple[str, str, int]  # (scheme, host, port)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self.loop = loop
        self.read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, CIMultiDict[str]]] | None = None
        self.body: list[bytes] = []
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.closed = False
        self.idle_since = 0.0
        self.last_data = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.keep_alive = False  # what the answer's headers allow (read when they are complete)
        self.headers_done = False

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self.waiter is not None and self._delimited_by_close():
            self.on_message_complete()  # an answer without a length ends where the connection does
            return
        self._fail(aiohttp.ServerDisconnectedError(f"connection lost: {exc}" if exc else None))

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server talking out of turn is not reused
            self.close()
            return
        self.last_data = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientConnectionError(f"unreadable HTTP answer: {exc}"))
            self.close()

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer to one request: the connection is not reused, the answer kept
            self.headers, self.body = CIMultiDict(), []
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def _delimited_by_close(self) -> bool:
        """Whether the answer's headers are in and its body runs to the end of the connection (no length given)."""
        headers = self.headers
        return (
            self.headers_done
            and "Content-Length" not in headers
            and "chunked" not in headers.get("Transfer-Encoding", "").lower()
        )

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if self.waiter is not None and 100 <= status < 200 and status != 101:
            # an informational answer (103 Early Hints): the answer follows it, as aiohttp reads it
            self.headers, self.body, self.headers_done = CIMultiDict(), [], False
            return
        waiter, self.waiter = self.waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), b"".join(self.body), self.headers))

    # -- one exchange ----------------------------------------------------------------------------------

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, CIMultiDict[str]]]:
        assert self.transport is not None
        self.body = []
        self.headers = CIMultiDict()
        self.keep_alive = False
        self.headers_done = False
        self.waiter = waiter = self.loop.create_future()
        self.last_data = self.loop.time()
        self.timer = self.loop.call_at(self.last_data + self.read_timeout, self._check_timeout)
        self.transport.write(request)
        return waiter

    def reusable(self) -> bool:
        return not self.closed and self.waiter is None and self.keep_alive

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _check_timeout(self) -> None:
        self.timer = None
        if self.waiter is None:
            return
        due = self.last_data + self.read_timeout
        if self.loop.time() < due:  # data came since: wait for the rest from the last chunk on
            self.timer = self.loop.call_at(due, self._check_timeout)
            return
        self._fail(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
        self.close()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class WireClient:
    """A pool of kept-alive connections per origin, for GETs (module docstring). `close()` closes them all."""

    def __init__(
        self, *, connect_timeout: float, read_timeout: float, pool_size: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_size = pool_size
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._closed = False
        self._ssl = ssl_context  # None: Python's default context, made on the first https connection
        self._targets: dict[str, tuple[Origin, str, str]] = {}  # url -> (origin, quoted path and query, host)
        self._queries: dict[tuple[tuple[str, str], ...], str] = {}

    async def get(
        self, url: str, query: list[tuple[str, str]] | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes, CIMultiDict[str]]:
        """(status, body, headers) of one GET of `url` with `query` appended."""
        origin, target, host = self._target(url)
        if query:
            target += ("&" if "?" in target else "?") + self._query(query)
        lines = [f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host")
        lines.append("\r\n")
        request = "".join(lines).encode("latin-1")
        connection = await self._acquire(origin)
        try:
            answer = await connection.send(request)
        except BaseException:
            self._discard(connection)
            raise
        if connection.reusable() and len(self._idle.setdefault(origin, [])) < self.pool_size:
            connection.idle_since = connection.loop.time()
            self._idle[origin].append(connection)
        else:
            self._discard(connection)
        return answer

    async def close(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    def _query(self, query: list[tuple[str, str]]) -> str:
        """The encoded query string, kept per distinct query (most reads send the same few)."""
        key = tuple(query)
        encoded = self._queries.get(key)
        if encoded is None:
            if len(self._queries) >= 4096:
                self._queries.clear()
            encoded = self._queries[key] = urlencode(query, safe=_QUERY_SAFE)
        return encoded

    def _target(self, url: str) -> tuple[Origin, str, str]:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https") or not parts.hostname:
                raise aiohttp.InvalidURL(url)
            default = 443 if scheme == "https" else 80
            port = parts.port or default
            host = parts.hostname if port == default else f"{parts.hostname}:{port}"
            if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in the Host header
                host = f"[{parts.hostname}]" + ("" if port == default else f":{port}")
            target = quote(parts.path or "/", safe=_PATH_SAFE) + (f"?{parts.query}" if parts.query else "")
            found = ((scheme, parts.hostname, port), target, host)
            if len(self._targets) >= 4096:
                self._targets.clear()
            self._targets[url] = found
        return found

    async def _acquire(self, origin: Origin) -> _Connection:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle and (idle[0].closed or now - idle[0].idle_since > KEEPALIVE):  # the longest idle first
            self._discard(idle.pop(0))
        while idle:
            connection = idle.pop()
            if connection.closed or connection.loop.time() - connection.idle_since > KEEPALIVE:
                self._discard(connection)
                continue
            return connection
        return await self._connect(origin)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, hostname, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                # The addresses raced as aiohttp races them (aiohappyeyeballs: any event loop, uvloop included,
                # whose create_connection takes no happy_eyeballs_delay); the connected socket is then wrapped.
                addresses = await loop.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1, loop=loop
                )
                try:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(loop, self.read_timeout),
                        sock=sock,
                        ssl=context,
                        server_hostname=hostname if context is not None else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError as exc:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {hostname}:{port}") from exc
        except OSError as exc:
            raise aiohttp.ClientConnectionError(f"cannot connect to {hostname}:{port}: {exc}") from exc
        if self._closed:  # closed while connecting
            connection.close()
            raise aiohttp.ClientConnectionError("the client is closed")
        self._open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)
