"""Redis pub/sub (`redis://host:port/db?prefix=...`): what one replica publishes reaches subscribers on all.

Never opens more than one Redis subscription per channel per process (local fan-out does the rest), and never
reports a subscription live before Redis confirmed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from typing import Any

import redis.asyncio as aioredis

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.urls import parse_redis_url
from delivery_gateway.pubsub.base import PubSub

log = logging.getLogger(__name__)


class RedisPubSub(PubSub):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "dg:pubsub:",
        queue_size: int = 256,
        metrics: Metrics | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size, metrics=metrics)
        self.url = url
        self.prefix = prefix
        self.client_options = client_options or {}
        self._redis: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._reader: asyncio.Task | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        # Shown by CLIENT LIST, so operators (and tests) can tell this process's connections apart.
        self.client_name = f"delivery-gateway-pubsub-{os.getpid()}-{secrets.token_hex(3)}"

    @classmethod
    def from_url(cls, url: str, *, queue_size: int = 256, metrics: Metrics | None = None) -> RedisPubSub:
        parsed = parse_redis_url(url)
        return cls(
            parsed.url,
            prefix=parsed.key_prefix("dg:pubsub:"),
            queue_size=queue_size,
            metrics=metrics,
            client_options=parsed.client_options(),
        )

    async def start(self) -> None:
        if self._redis is not None:
            return
        self._redis = aioredis.Redis.from_url(
            self.url, decode_responses=True, client_name=self.client_name, **self.client_options
        )
        await self._redis.ping()
        self._pubsub = self._redis.pubsub()
        # A standing subscription keeps the reader's listen() loop alive while no channel is subscribed.
        await self._subscribe_confirmed(self.prefix + "_control", start_reader=True)
        # redis-py resubscribes by itself after a reconnect; what was published meanwhile is lost: say so.
        assert self._pubsub.connection is not None, "subscribed above, so connected"
        self._pubsub.connection.register_connect_callback(self._on_reconnect)

    async def _on_reconnect(self, connection) -> None:
        log.warning("redis pub/sub reconnected; subscribers catch up from the ledger")
        self._resync_all()

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def ping(self) -> None:
        """Readiness: Redis answers, and the subscription reader is alive."""
        if self._redis is None or self._reader is None or self._reader.done():
            raise ConnectionError("redis pub/sub is not running")
        await self._redis.ping()

    async def publish(self, channel: str, message: str) -> None:
        if self._redis is None:
            raise RuntimeError("RedisPubSub used before start()")
        self._count_published()
        await self._redis.publish(self.prefix + channel, message)

    async def _listen(self, channel: str) -> None:
        await self._subscribe_confirmed(self.prefix + channel)

    async def _unlisten(self, channel: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(self.prefix + channel)

    async def _subscribe_confirmed(self, full_channel: str, *, start_reader: bool = False) -> None:
        assert self._pubsub is not None, "RedisPubSub used before start()"
        event = self._confirmed[full_channel] = asyncio.Event()
        await self._pubsub.subscribe(full_channel)
        if start_reader:
            self._reader = asyncio.create_task(self._read(), name="redis-pubsub-reader")
        await asyncio.wait_for(event.wait(), timeout=10)

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                async for message in self._pubsub.listen():
                    kind = message.get("type")
                    full = message.get("channel")
                    if kind == "subscribe":
                        event = self._confirmed.pop(full, None)
                        if event is not None:
                            event.set()
                    elif kind == "message" and full.startswith(self.prefix):
                        self._dispatch(full[len(self.prefix) :], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # connection lost: redis-py resubscribes on reconnect; keep reading
                log.warning("redis pub/sub reader failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                self._resync_all()
