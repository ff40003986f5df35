"""One WebSocket's frames on their way out: written at once while the socket keeps up, queued (bounded) while it
does not, so that a hub writing one event to thousands of sockets never waits for any of them.

A write starts in the caller's own step (no task, no queue while the socket keeps up: the ASGI send of a
writable socket completes without suspending); only a write that has to wait for the socket (its transport is
paused: the peer does not read) goes on in a task of its own, and later frames queue behind it in order. More
than `limit` frames waiting means the peer cannot keep up: `put` says so and the owner decides (live/hub.py ends
the socket's hub subscriptions with SLOW_CONSUMER, as pub/sub ends a subscriber that falls behind).

When the server offers a frame writer (http/websocket.py), a frame built once for many sockets is written with it
directly while the socket keeps up; whenever the writer declines (a paused transport, a negotiated compression, a
closing connection) the frame's text goes through `send` as above.

Never reorders a socket's frames, never holds more than `limit` of them plus the final ones `force` adds, and holds
no task while nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("delivery_gateway.live")

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]  # the socket's ASGI send (Starlette's WebSocket.send)
WriteFrame = Callable[[bytes], bool]  # http/websocket.py's `write_frame`: True when written, False to use `send`


class Outbox:
    """A socket's pending frames (text), written in order as `websocket.send` messages through `send`."""

    __slots__ = ("_frames", "_send", "_writer", "limit", "write_frame")

    def __init__(self, send: Send, limit: int, write_frame: WriteFrame | None = None) -> None:
        self._send = send
        self.limit = limit
        self.write_frame = write_frame  # None: every frame goes through `send`
        self._frames: deque[str] | None = None  # made when a write first waits (an idle socket holds none)
        self._writer: asyncio.Task[None] | None = None  # only while a write waits for the socket

    @property
    def waiting(self) -> int:
        """Frames queued behind a write that waits for the socket."""
        return len(self._frames) if self._frames is not None else 0

    def put(self, frame: str, built: bytes | None = None) -> bool:
        """Write `frame` now, or queue it behind a waiting write; False (nothing queued) when `limit` frames wait
        already. `built`: the same frame as wire bytes (http/websocket.py's `text_frame`), written with the
        server's frame writer when it accepts it."""
        if self._writer is not None:
            if self.waiting >= self.limit:
                return False
            self._queue(frame)
            return True
        if built is not None and self.write_frame is not None and self.write_frame(built):
            return True  # written: the common case for a hub's frame
        self._start(frame)
        return True

    def force(self, frame: str) -> None:
        """Write or queue `frame` whatever the bound (a subscription's last frames: its error, its `complete`)."""
        if self._writer is not None:
            self._queue(frame)
        else:
            self._start(frame)

    def drop_waiting(self) -> None:
        """Forget the frames still queued (the subscriptions they belong to ended)."""
        self._frames = None

    def _queue(self, frame: str) -> None:
        if self._frames is None:
            self._frames = deque()
        self._frames.append(frame)

    def _start(self, frame: str) -> None:
        """Runs the write's first step here; if it has to wait for the socket, a task finishes it and then writes
        whatever queued meanwhile."""
        write = self._send({"type": "websocket.send", "text": frame})
        try:
            awaiting = write.send(None)
        except StopIteration:
            return  # written without waiting: the common case
        except Exception as exc:
            log.debug("websocket write failed: %r", exc)
            return
        self._writer = asyncio.ensure_future(self._finish(write, awaiting))

    async def _finish(self, write: Coroutine[Any, Any, None], awaiting: Any) -> None:
        try:
            await _resume(write, awaiting)
            while self._frames:
                await self._send({"type": "websocket.send", "text": self._frames.popleft()})
        except Exception as exc:
            log.debug("websocket write failed: %r", exc)
        finally:
            self._frames = None
            self._writer = None


async def _resume(write: Coroutine[Any, Any, None], awaiting: Any) -> None:
    """Drives `write` on from a step that yielded `awaiting`, as the task running it would: wait for what it
    waits for, then step it again (it reads that future's outcome itself).

    A future a step yields is marked as being awaited (`_asyncio_future_blocking`); a task clears that mark before
    waiting for it, and so must this: awaiting it with the mark set fails at once ("await wasn't used with
    future"), and stepping the write on while it is still pending would then fail the write."""
    while True:
        try:
            if awaiting is None:
                await asyncio.sleep(0)  # a bare yield
            else:
                if asyncio.isfuture(awaiting):
                    awaiting._asyncio_future_blocking = False
                await awaiting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                write.close()
                raise
        except Exception:
            pass
        try:
            awaiting = write.send(None)
        except StopIteration:
            return
