"""The delivery ledger: every receipt status change, a sequenced change log and a durable webhook inbox.

Never picks a store implicitly: `create_ledger(settings.store_url)` chooses by URL scheme (one SQL
implementation: `memory://` and `sqlite:///path` on SQLite, `postgresql://` on PostgreSQL).
"""

from __future__ import annotations

from delivery_gateway.ledger.base import AfterCommit, DeliveryLedger, LedgerUnavailable
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
)
from delivery_gateway.ledger.reports import (
    FailedDelivery,
    FailedDeliveryPage,
    InvalidCursor,
    ReportDimension,
    ReportRow,
)

__all__ = [
    "AfterCommit",
    "ApplyResult",
    "ChangeKind",
    "DeliveryLedger",
    "FailedDelivery",
    "FailedDeliveryPage",
    "HistoryEntry",
    "InvalidCursor",
    "LedgerChange",
    "LedgerEvent",
    "LedgerUnavailable",
    "PruneResult",
    "ReportDimension",
    "ReportRow",
    "create_ledger",
]


def create_ledger(url: str) -> DeliveryLedger:
    """`memory://` (in-memory SQLite, tests), `sqlite:///path[?synchronous=FULL]` or
    `postgresql://user@host:port/db[?schema=…&pool_size=…]`; then `await start()`.

    Raises ValueError (one line) for anything else, a retired `redis://` ledger included.
    """
    from delivery_gateway.ledger.sql import SqlLedger

    return SqlLedger(url)
