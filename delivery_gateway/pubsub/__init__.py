"""Live-update broker: webhook changes are published per conversation and fanned out to local subscribers.

Never picks a backend implicitly: `create_pubsub(settings.pubsub_url, ...)` chooses by URL scheme.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.pubsub.base import GAP, PubSub, SlowConsumer, Subscriber

__all__ = [
    "GAP",
    "PubSub",
    "SlowConsumer",
    "Subscriber",
    "conversation_channel",
    "create_pubsub",
    "service_channel",
]


def conversation_channel(conversation_sid: str) -> str:
    """The one channel carrying every ledger change of a conversation (delivery, read horizon, messages)."""
    return f"conversation:{conversation_sid}"


def service_channel(service_sid: str) -> str:
    """The one channel carrying every ledger change of a Conversation Service (the service-wide stream)."""
    return f"service:{service_sid}"


def create_pubsub(url: str, *, queue_size: int = 256, metrics: Metrics | None = None) -> PubSub:
    """`memory://` or `redis://host:port/db[?prefix=dg:pubsub:]`; then `await start()`, `close()` last."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from delivery_gateway.pubsub.memory import MemoryPubSub

        return MemoryPubSub(queue_size=queue_size, metrics=metrics)
    if scheme in ("redis", "rediss"):
        from delivery_gateway.pubsub.redis import RedisPubSub

        return RedisPubSub.from_url(url, queue_size=queue_size, metrics=metrics)
    raise ValueError(f"unsupported pub/sub URL scheme {scheme!r} (memory://, redis://)")
