"""The delivery ledger: every receipt status change, a sequenced change log and a durable webhook inbox.

Never picks a backend implicitly: `create_ledger(settings.store_url)` chooses by URL scheme.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from delivery_gateway.ledger.base import DeliveryLedger
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
)

__all__ = [
    "ApplyResult",
    "ChangeKind",
    "DeliveryLedger",
    "HistoryEntry",
    "LedgerChange",
    "LedgerEvent",
    "PruneResult",
    "create_ledger",
]


def create_ledger(url: str) -> DeliveryLedger:
    """`memory://`, `sqlite:///path` or `redis://host:port/db[?prefix=dg:ledger:]`; then `await start()`."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from delivery_gateway.ledger.memory import MemoryLedger

        return MemoryLedger()
    if scheme == "sqlite":
        from delivery_gateway.ledger.sqlite import SqliteLedger

        return SqliteLedger.from_url(url)
    if scheme in ("redis", "rediss"):
        from delivery_gateway.ledger.redis import RedisLedger

        return RedisLedger.from_url(url)
    raise ValueError(f"unsupported ledger URL scheme {scheme!r} (memory://, sqlite:///path, redis://)")
