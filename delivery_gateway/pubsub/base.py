"""Local fan-out shared by pub/sub backends: one upstream subscription per channel, bounded subscriber queues.

Never lets a subscriber's queue grow without bound: one that falls `queue_size` messages behind is closed with
`SlowConsumer`, and never blocks a publisher on a slow subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

from delivery_gateway.kernel.errors import CodedError
from delivery_gateway.kernel.metrics import Metrics


class SlowConsumer(CodedError):
    """The subscriber fell more than its queue size behind; it was closed to protect the process's memory."""

    code = "SLOW_CONSUMER"

    def __init__(self, channel: str, queue_size: int) -> None:
        super().__init__(
            f"subscriber on {channel!r} fell more than {queue_size} events behind and was closed; "
            "resubscribe with the cursor of the last event received to catch up"
        )
        self.channel = channel
        self.queue_size = queue_size


_OVERFLOW = object()
_CLOSED = object()

# Delivered in place of a message when the broker may have missed some (its upstream reconnected): a subscriber
# that can catch up from elsewhere (the ledger) does so. Never valid JSON, so never confused with a message.
GAP = "\x00gap"


class Subscriber:
    """One local listener on one channel; iterate it to receive messages (str) in publish order."""

    def __init__(self, channel: str, queue_size: int) -> None:
        self.channel = channel
        self.queue_size = queue_size
        # One slot more than the bound, reserved for the overflow/close marker.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size + 1)
        self.overflowed = False
        self.closed = False

    def deliver(self, message: str) -> bool:
        """Queue `message`; False (and the subscriber is closed) when it is too far behind."""
        if self.closed:
            return False
        if self._queue.qsize() >= self.queue_size:
            self.overflowed = True
            self._end(_OVERFLOW)
            return False
        self._queue.put_nowait(message)
        return True

    def close(self) -> None:
        if not self.closed:
            self._end(_CLOSED)

    def _end(self, marker: object) -> None:
        self.closed = True
        while not self._queue.empty():  # what is queued is dropped: the subscriber resumes from its cursor
            self._queue.get_nowait()
        self._queue.put_nowait(marker)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> str:
        item = await self._queue.get()
        if item is _OVERFLOW:
            self._queue.put_nowait(item)  # stays ended
            raise SlowConsumer(self.channel, self.queue_size)
        if item is _CLOSED:
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        return item


class PubSub(ABC):
    """A broker: `publish(channel, text)`; `async with subscribe(channel) as sub: async for text in sub`.

    Lifecycle: `await start()` before use, `await close()` last (closing ends every subscriber).
    """

    def __init__(self, *, queue_size: int = 256, metrics: Metrics | None = None) -> None:
        self.queue_size = queue_size
        self.metrics = metrics
        self._published_counter: Any = None
        self._channels: dict[str, set[Subscriber]] = {}
        self._channel_lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subscribers in list(self._channels.values()):
            for sub in list(subscribers):
                sub.close()
        self._channels.clear()

    async def ping(self) -> None:
        """Readiness: raises when the broker cannot deliver (an in-process broker always can)."""
        return None

    @abstractmethod
    async def publish(self, channel: str, message: str) -> None: ...

    @abstractmethod
    async def _listen(self, channel: str) -> None:
        """Start receiving `channel` upstream; return once messages published from now on will arrive."""

    @abstractmethod
    async def _unlisten(self, channel: str) -> None: ...

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, *, queue_size: int | None = None) -> AsyncIterator[Subscriber]:
        """A live subscriber: every message published after this returns reaches it (or it overflows)."""
        sub = Subscriber(channel, queue_size or self.queue_size)
        async with self._channel_lock:
            listeners = self._channels.get(channel)
            if listeners is None:
                await self._listen(channel)
                listeners = self._channels[channel] = set()
            listeners.add(sub)
        try:
            yield sub
        finally:
            sub.close()
            async with self._channel_lock:
                listeners = self._channels.get(channel)
                if listeners is not None:
                    listeners.discard(sub)
                    if not listeners:
                        del self._channels[channel]
                        with contextlib.suppress(Exception):
                            await self._unlisten(channel)

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    def _dispatch(self, channel: str, message: str) -> None:
        """Fan one upstream message out to the local subscribers; drops the ones that overflow."""
        if self.metrics is not None:
            self.metrics.pubsub_messages.labels("received").inc()
        listeners = self._channels.get(channel)
        if not listeners:
            return
        for sub in list(listeners):
            if not sub.deliver(message):
                listeners.discard(sub)

    def _resync_all(self) -> None:
        """The upstream connection was re-established: every local subscriber may have missed messages."""
        for listeners in self._channels.values():
            for sub in list(listeners):
                if not sub.deliver(GAP):
                    listeners.discard(sub)

    def _count_published(self) -> None:
        if self.metrics is not None:
            counter = self._published_counter
            if counter is None:  # `labels` takes a lock on every call; the child never changes
                counter = self._published_counter = self.metrics.pubsub_messages.labels("published")
            counter.inc()
