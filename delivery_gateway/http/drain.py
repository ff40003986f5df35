"""Graceful shutdown of long-lived connections: WebSockets close with 1001 "going away", event streams end.

`OpenStreams` tracks every accepted WebSocket and every streamed HTTP response (graphql-sse's
`text/event-stream`, multipart subscriptions) that passes `StreamDrainMiddleware`; `close_all()` ends them so a
client reconnects elsewhere (resuming from its cursor) instead of waiting on a server that is going away.
Never touches ordinary requests: a webhook or a query in flight runs to its end; uvicorn waits for those.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

GOING_AWAY = 1001  # RFC 6455 §7.4.1: "an endpoint is going away, such as a server going down"
GOING_AWAY_REASON = "going away"
_STREAM_TYPES = (b"text/event-stream", b"multipart/mixed")


@dataclass(eq=False, slots=True)
class _Open:
    """One open stream: how to close it, and the task serving it (cancelled if it does not end by itself).

    Slotted, and its event made only when a shutdown waits for it: one lives as long as each WebSocket."""

    kind: str  # "websocket" | "stream"
    send: Send
    task: asyncio.Task[object] | None
    content_type: bytes = b""
    closed: bool = False  # this module ended it: later sends from the app are dropped
    finished: bool = False  # its handler returned
    done: asyncio.Event | None = None

    def finish(self) -> None:
        self.finished = True
        if self.done is not None:
            self.done.set()

    async def wait_finished(self) -> None:
        if self.finished:
            return
        if self.done is None:
            self.done = asyncio.Event()
        await self.done.wait()


class OpenStreams:
    """The registry `StreamDrainMiddleware` fills; one per app."""

    def __init__(self) -> None:
        self._open: set[_Open] = set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._open)

    async def close_all(self, *, grace: float = 5.0) -> int:
        """Close every open stream; wait up to `grace` seconds for their handlers to finish (then cancel them).

        From then on, a WebSocket accepted meanwhile is closed with 1001 at once and a new stream ends as soon as it
        starts. Returns how many were closed.
        """
        self.draining = True
        entries = list(self._open)
        for entry in entries:
            await _end(entry)
        if entries:
            waiters = [asyncio.ensure_future(entry.wait_finished()) for entry in entries]
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
            for entry in entries:
                if not entry.finished and entry.task is not None:
                    entry.task.cancel()
        return len(entries)


async def _end(entry: _Open) -> None:
    if entry.closed:
        return
    entry.closed = True
    with contextlib.suppress(Exception):  # the client may be gone already
        if entry.kind == "websocket":
            await entry.send({"type": "websocket.close", "code": GOING_AWAY, "reason": GOING_AWAY_REASON})
        else:
            if entry.content_type.startswith(b"text/event-stream"):
                # An SSE comment: ignored by clients, tells a human reading the stream why it ended.
                await entry.send({"type": "http.response.body", "body": b": server going away\n\n", "more_body": True})
            await entry.send({"type": "http.response.body", "body": b"", "more_body": False})
    if entry.kind == "stream" and entry.task is not None:
        # A stream's handler only notices the end at its next event or heartbeat: stop it now.
        entry.task.cancel()


class StreamDrainMiddleware:
    """Registers WebSockets once accepted and HTTP responses once they turn out to be streams."""

    def __init__(self, app: ASGIApp, *, streams: OpenStreams) -> None:
        self.app = app
        self.streams = streams

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Dispatched without a frame of its own: a WebSocket holds the frames below for as long as it lives.
        kind = scope["type"]
        if kind == "websocket":
            return self._websocket(scope, receive, send)
        if kind == "http":
            return self._http(scope, receive, send)
        return self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        streams = self.streams
        entry = _Open("websocket", send, asyncio.current_task())

        async def tracked_send(message: Message) -> None:
            if entry.closed:
                return  # closed for shutdown: the app's last messages have nowhere to go
            await send(message)
            if message["type"] == "websocket.accept":
                streams._open.add(entry)
                if streams.draining:
                    await _end(entry)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if not _stopped_here(entry):
                raise
        finally:
            streams._open.discard(entry)
            entry.finish()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _asks_for_a_stream(scope):  # Strawberry streams only to clients that accept a stream type
            await self.app(scope, receive, send)
            return
        streams = self.streams
        entry: _Open | None = None
        task = asyncio.current_task()

        async def tracked_send(message: Message) -> None:
            nonlocal entry
            if entry is not None:
                if entry.closed:
                    return
            elif message["type"] == "http.response.start":
                content_type = _content_type(message)
                if content_type.startswith(_STREAM_TYPES):
                    entry = _Open("stream", send, task, content_type)
                    streams._open.add(entry)
                    if streams.draining:
                        await send(message)
                        await _end(entry)
                        return
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if entry is None or not _stopped_here(entry):
                raise
        finally:
            if entry is not None:
                streams._open.discard(entry)
                entry.finish()


def _stopped_here(entry: _Open) -> bool:
    """True when this module cancelled the stream's task (after ending the stream): the task then ends normally."""
    if not entry.closed or entry.task is None:
        return False
    entry.task.uncancel()
    return True


def _asks_for_a_stream(scope: Scope) -> bool:
    for key, value in scope.get("headers") or ():
        if key == b"accept":  # ASGI servers give header names in lower case
            accept = bytes(value).lower()
            return b"text/event-stream" in accept or b"multipart/mixed" in accept
    return False


def _content_type(message: Message) -> bytes:
    for key, value in message.get("headers", ()):
        if key.lower() == b"content-type":
            return bytes(value).lower()
    return b""
