"""The WebSocket protocol the gateway is served with (ops/runner.py's uvicorn configuration): uvicorn's default
(`websockets-sansio`), lighter per connection, with a cheaper write for frames built once for many sockets.

- `write_frame(frame)`: writes an already-built text frame (server frames are unmasked: header + payload, as
  `text_frame` builds it) straight to the transport, when nothing stands between it and the wire: the handshake
  is done, the connection is open, no extension was negotiated (permessage-deflate compresses each message with
  the connection's own state) and the transport is not paused. Otherwise it writes nothing and returns False: the
  caller sends the message through the ASGI `send` as usual (which waits for a paused transport). A live hub
  writes one event to thousands of sockets; an ASGI `send` per socket re-frames the same text each time.
  The protocol offers itself in the scope's extensions (`frame_writer(scope)`).
- Per connection it keeps less while idle: the receive queue and the "writable" flag hold no deque (asyncio's
  Queue allocates three and an Event of its own, an Event one; the receive queue holds a one-item list while the
  app waits in `receive`), and the handshake's request and response are dropped once accepted.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

FRAME_WRITER_EXTENSION = "delivery_gateway.websocket.frame_writer"

FrameWriter = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (UTF-8), as a server sends it (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def frame_writer(scope: Scope) -> FrameWriter | None:
    """The connection's `write_frame`, or None when the server is not a `GatewayWebSocketProtocol`."""
    protocol = scope.get("extensions", {}).get(FRAME_WRITER_EXTENSION)
    return protocol.write_frame if protocol is not None else None


class _Waiters:
    """Futures waiting on a `_Received` or `_Writable`, in a list made only while one waits."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] | None = None

    def _waiter(self) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiters
        if waiters is not None:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters = None


class _Received(_Waiters):
    """What uvicorn's protocol uses of an asyncio.Queue (`put_nowait`, `get`, `empty`), holding no container while
    it is empty and no getter waits (a waiting getter: a one-item list)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Any] | None = None

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter()
            try:
                await waiter
            except asyncio.CancelledError:
                # As asyncio.Queue: an item that woke this getter goes to the next one.
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake_next(waiter)
                raise
            finally:
                self._forget(waiter)
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item

    def _wake_next(self, woken: asyncio.Future[None]) -> None:
        for waiter in self._waiters or ():
            if waiter is not woken and not waiter.done():
                waiter.set_result(None)
                return


class _Writable(_Waiters):
    """What uvicorn's protocol uses of an asyncio.Event (`set`, `clear`, `wait`), holding no container while set."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        super().__init__()
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = self._waiter()
        try:
            await waiter
        finally:
            self._forget(waiter)
        return True


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol with `write_frame` and a lighter idle connection (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Received()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][FRAME_WRITER_EXTENSION] = self  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake is over: its request and response (headers and all) are not read again.
            self.request = self.response = None  # type: ignore[assignment]

    def write_frame(self, frame: bytes) -> bool:
        """Writes `frame` (a complete text frame, `text_frame`) now and returns True, or writes nothing and returns
        False when it has to go through `send` (module doc)."""
        if (
            self.disconnected
            or self.close_sent
            or not self.writable.is_set()
            or self.conn.extensions
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
