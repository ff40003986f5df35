"""WebSocket subscribers for the fan-out rows, in a process of their own: many graphql-transport-ws clients on raw
asyncio sockets, each frame stamped with CLOCK_MONOTONIC the moment its bytes arrive.

Never connects anywhere but the loopback URLs it is given, never runs without its parent (it exits when stdin
closes), and never waits without a deadline. A hand-rolled RFC 6455 client, because a general-purpose one costs
more CPU per frame than the server under test spends sending it.

Run: `python -m bench.ws_clients --url ws://127.0.0.1:PORT/graphql [--url ...] --count N --init JSON --subscribe JSON`
Prints `READY {json}` once every connection is subscribed (or failed), then answers JSON commands, one per line:
  {"cmd": "await", "marker": "DY...", "timeout": 10}  ->  {"times": [t | null per connection], "cpu": s, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

SUBPROTOCOL = "graphql-transport-ws"
CONNECT_TIMEOUT = 60.0

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2: client frames are always masked)."""
    n = len(payload)
    header = bytearray([0x80 | opcode])
    if n < 126:
        header.append(0x80 | n)
    elif n < 1 << 16:
        header.append(0x80 | 126)
        header += n.to_bytes(2, "big")
    else:
        header.append(0x80 | 127)
        header += n.to_bytes(8, "big")
    mask = os.urandom(4)
    header += mask
    if n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return bytes(header) + payload


class Tracker:
    """The marker being awaited and how many subscribers have not seen it yet; frames tick it off on arrival, so
    waiting costs nothing per frame beyond one substring search."""

    def __init__(self) -> None:
        self.marker: bytes | None = None
        self.remaining = 0
        self.done = asyncio.Event()

    def start(self, marker: bytes, remaining: int) -> None:
        self.marker = marker
        self.remaining = remaining
        self.done.clear()
        if remaining <= 0:
            self.done.set()

    def seen(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()


class Subscriber(asyncio.Protocol):
    """One WebSocket: HTTP upgrade, connection_init, subscribe; then it records every `next` frame it receives."""

    def __init__(self, host: str, path: str, init: bytes, subscribe: bytes, tracker: Tracker) -> None:
        self.tracker = tracker
        self.host = host
        self.path = path
        self.init = init
        self.subscribe = subscribe
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.frames: list[tuple[float, bytes]] = []  # (arrival time, payload) of `next` messages
        self.errors: list[str] = []
        self.closed = False
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[: end + 4]
            if b" 101 " not in status_line:
                self._fail(f"upgrade refused: {status_line.decode(errors='replace')}")
                return
            self.upgraded = True
            self.send(TEXT, self.init)
        self._frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed and self.tracker.marker is not None and self.first_arrival(self.tracker.marker) is None:
            self.tracker.seen()  # it will never see the marker: stop waiting for it
        self.closed = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost before subscribing: {exc}"))

    # -- frames
    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def _fail(self, reason: str) -> None:
        self.errors.append(reason)
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def _frames(self, now: float) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n = b1 & 0x7F
            offset = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                offset = 10
            mask = b""
            if b1 & 0x80:
                mask = bytes(buf[offset : offset + 4])
                offset += 4
            if len(buf) < offset + n:
                return
            payload = bytes(buf[offset : offset + n])
            del buf[: offset + n]
            if mask:
                key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
                payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
            self._frame(b0 & 0x80, b0 & 0x0F, payload, now)

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == PING:
            self.send(PONG, payload)
            return
        if opcode == PONG:
            return
        if opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.errors.append(f"closed by server: {code} {payload[2:].decode(errors='replace')}")
            self.send(CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()
            return
        self.fragments.append(payload)
        if not fin:
            return
        message = b"".join(self.fragments)
        self.fragments.clear()
        head = message[:48]
        if b'"next"' in head:
            marker = self.tracker.marker
            first = marker is not None and marker in message and self.first_arrival(marker) is None
            self.frames.append((now, message))
            if first:
                self.tracker.seen()
            return
        self._control(json.loads(message))

    def _control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "connection_ack":
            self.send(TEXT, self.subscribe)
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif kind == "ping":
            self.send(TEXT, b'{"type":"pong"}')
        elif kind in ("error", "complete"):
            self.errors.append(f"{kind}: {json.dumps(message.get('payload'))[:200]}")

    def first_arrival(self, marker: bytes) -> tuple[float, bytes] | None:
        for arrival, payload in self.frames:
            if marker in payload:
                return arrival, payload
        return None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()


async def _connect(url: str, init: bytes, subscribe: bytes, tracker: Tracker) -> Subscriber:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: Subscriber(f"{host}:{port}", parts.path or "/", init, subscribe, tracker), host, port
    )
    await protocol.subscribed
    return protocol


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _await_marker(
    subscribers: list[Subscriber], tracker: Tracker, marker: bytes, within_s: float
) -> dict[str, Any]:
    """Wait until every open subscriber has a frame containing `marker` (or `within_s` passed); arrival times."""
    missing = sum(1 for s in subscribers if not s.closed and s.first_arrival(marker) is None)
    tracker.start(marker, missing)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tracker.done.wait(), within_s)
    tracker.marker = None
    times: list[float | None] = []
    sample = None
    for s in subscribers:
        hit = s.first_arrival(marker)
        times.append(hit[0] if hit else None)
        if hit and sample is None:
            sample = hit[1].decode()
    return {"times": times, "sample": sample}


async def main_async(args: argparse.Namespace) -> None:
    init = json.dumps({"type": "connection_init", "payload": json.loads(args.init)}).encode()
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": json.loads(args.subscribe)}).encode()
    semaphore = asyncio.Semaphore(args.connect_concurrency)
    urls = args.url
    tracker = Tracker()

    async def one(i: int) -> Subscriber | str:
        async with semaphore:
            try:
                return await asyncio.wait_for(_connect(urls[i % len(urls)], init, subscribe, tracker), CONNECT_TIMEOUT)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(args.count)))
    subscribers = [r for r in results if isinstance(r, Subscriber)]
    failures = [r for r in results if isinstance(r, str)]
    _reply(
        {
            "ready": True,
            "connected": len(subscribers),
            "failed": len(failures),
            "first_failures": failures[:3],
            "seconds": time.monotonic() - started,
            "cpu": time.process_time(),
        }
    )
    if failures:  # positions in `times` must match connection order: a partial set is useless to the bench
        return
    reader = await _lines()
    while line := await reader.readline():
        command = json.loads(line)
        if command["cmd"] == "await":
            answer = await _await_marker(subscribers, tracker, command["marker"].encode(), float(command["timeout"]))
        else:
            answer = {}
        errors = [e for s in subscribers for e in s.errors]
        answer.update(
            cpu=time.process_time(),
            closed=sum(s.closed for s in subscribers),
            errors=len(errors),
            first_errors=errors[:3],
        )
        _reply(answer)
    for s in subscribers:
        s.close()
    await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description="graphql-transport-ws subscribers (loopback only)")
    parser.add_argument("--url", action="append", required=True, help="ws:// URL; several: round-robin")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--init", default="{}", help="connection_init payload (JSON)")
    parser.add_argument("--subscribe", required=True, help="subscribe payload: {query, variables} (JSON)")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    args = parser.parse_args()
    for url in args.url:
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"{url}: loopback only")
    try:
        from uvloop import run
    except ImportError:  # plain asyncio is fine, only a little slower
        run = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        run(main_async(args))


if __name__ == "__main__":
    main()
