"""Clients that send slowly, or too much, before the gateway knows who they are: held no longer than the header
deadline (DELIVERY_GATEWAY_HEADER_TIMEOUT), refused before their body is awaited when unauthenticated, while
healthy keep-alive clients go on undisturbed.

`create_app` served exactly as `serve` serves it (ops/runner.py's uvicorn configuration) on a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from delivery_gateway.app import create_app
from delivery_gateway.http.server import MAX_HEADER_BYTES, HeaderDeadlineProtocol
from delivery_gateway.ops.runner import served_config
from tests.app_support import free_port
from tests.graphql.fake_upstream import FakeConversations
from tests.security.conftest import API_KEY, make_settings

BOUND = 1.0  # DELIVERY_GATEWAY_HEADER_TIMEOUT of these tests, seconds


@contextlib.asynccontextmanager
async def served(**overrides) -> AsyncIterator[int]:
    settings = make_settings(DELIVERY_GATEWAY_HEADER_TIMEOUT=BOUND, **overrides)
    port = free_port()
    config = served_config(create_app(settings, upstream=FakeConversations()), settings)  # exactly what `serve` runs
    config.host, config.port = "127.0.0.1", port
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server stopped during startup"
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def read_all(reader: asyncio.StreamReader, wait: float) -> bytes:
    """What the server sends until it closes the connection (or `wait` seconds pass: then what came so far)."""
    chunks = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            try:
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
            except ConnectionError:  # closed with our unread bytes in its buffer: the kernel resets instead
                pass
            return b"".join(chunks) + b"<closed>"
    return b"".join(chunks)


async def trickler(port: int, stop: asyncio.Event) -> float:
    """One connection sending a header line every 0.3 s; returns how long the server kept it open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            while not stop.is_set():
                await asyncio.sleep(0.3)
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()

    dripping = asyncio.create_task(drip())
    answer = await read_all(reader, BOUND + 10)
    held = time.monotonic() - opened
    dripping.cancel()
    writer.close()
    assert answer.endswith(b"<closed>"), "the connection outlived the header deadline"
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"<closed>", answer
    return held


async def keep_alive_client(port: int, rounds: int, idle: float, answered: asyncio.Event | None = None) -> list[bytes]:
    """One connection, `rounds` requests with `idle` seconds between them (longer than the header deadline);
    `answered` is set once the first one is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses = []
    for _ in range(rounds):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        headers = b""
        while (line := await asyncio.wait_for(reader.readline(), 10)) != b"\r\n":
            headers += line.lower()
        length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        statuses.append(status.split(b" ")[1])
        if answered is not None:
            answered.set()
        await asyncio.sleep(idle)
    writer.close()
    return statuses


@pytest.mark.timeout(120)
async def test_a_thousand_slow_header_connections_are_closed_at_the_deadline() -> None:
    async with served() as port:
        stop = asyncio.Event()
        answered = asyncio.Event()
        healthy = asyncio.create_task(keep_alive_client(port, rounds=4, idle=BOUND * 1.5, answered=answered))
        # Its connection is made and its first request answered first: a loop busy accepting 1,000 sockets may
        # read a new connection's first bytes later than the deadline, which is the tricklers' case, not its own.
        await asyncio.wait_for(answered.wait(), 10)
        slow = [asyncio.create_task(trickler(port, stop)) for _ in range(1000)]
        held = await asyncio.gather(*slow)
        stop.set()
        # The deadline's own slack: timers of a loop serving 1,000 sockets on a shared machine fire late.
        assert max(held) < BOUND + 4.0, f"held up to {max(held):.1f}s"
        assert sorted(held)[len(held) // 2] >= BOUND * 0.9  # and not cut short either
        assert await healthy == [b"200"] * 4  # the same connection throughout, idle longer than the deadline


async def test_a_connection_that_sends_nothing_is_closed_at_the_deadline() -> None:
    async with served() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        answer = await read_all(reader, BOUND + 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408") and answer.endswith(b"<closed>")
    assert BOUND * 0.9 <= time.monotonic() - started < BOUND + 2


async def test_headers_larger_than_the_limit_are_refused() -> None:
    async with served() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        for _ in range(MAX_HEADER_BYTES // 1000 + 2):
            writer.write(b"X-Padding: " + b"p" * 1000 + b"\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await read_all(reader, 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431") and answer.endswith(b"<closed>")


async def test_an_unauthenticated_trickling_body_is_refused_at_once() -> None:
    """Authentication reads headers only: a client without credentials gets its 401 before sending its body,
    while an authenticated one that trickles is cut off by the body deadline instead."""
    async with served(DELIVERY_GATEWAY_BODY_READ_TIMEOUT=2) as port:
        for credentials, status, within in (
            (b"", b"401", 1.0),
            (f"Authorization: Bearer {API_KEY}\r\n".encode(), b"408", 4.0),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n" + credentials + b"\r\n{"
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), within + 1)
            elapsed = time.monotonic() - started
            writer.close()
            assert status_line.split(b" ")[1] == status, status_line
            assert elapsed < within, f"{status!r} after {elapsed:.1f}s"


async def test_a_later_request_on_a_kept_connection_gets_its_own_full_deadline() -> None:
    """The clock armed for the first request fires during the second one: the second is held to its own
    deadline (from its first byte), neither cut short by the first's nor left unbounded."""
    async with served() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 10)).split(b" ")[1] == b"200"
        await asyncio.sleep(BOUND * 0.6)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")  # the second request's headers never end
        started = time.monotonic()
        answer = await read_all(reader, BOUND + 5)
        writer.close()
    assert answer.endswith(b"<closed>")
    assert b"HTTP/1.1 408" in answer
    assert BOUND * 0.9 <= time.monotonic() - started < BOUND + 2


async def test_a_websocket_upgrade_leaves_no_http_protocol_behind() -> None:
    """Once a connection is upgraded, its HTTP protocol (parser, buffers) is garbage at once: no header clock keeps
    it for the deadline's length, for every new subscriber (a burst of 10,000 would hold them all)."""
    async with served() as port:  # a deadline (1 s) far longer than the handshake
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/graphql", subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL], compression=None
        ) as ws:
            assert ws.subprotocol == GRAPHQL_TRANSPORT_WS_PROTOCOL  # upgraded
            gc.collect()
            alive = [o for o in gc.get_objects() if isinstance(o, HeaderDeadlineProtocol)]
            assert alive == []
