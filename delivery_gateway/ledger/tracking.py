"""Tracked receipts: which receipts reconciliation re-reads, and the leases that keep replicas from re-reading
the same one at once (the `ledger_tracked` table).

Synchronous functions of a `Connection` the SQL ledger runs inside its own operations (ledger/sql.py: on
SQLite's thread, or through `run_sync` on PostgreSQL), like its other statements: never opens a connection or a
transaction itself, never talks HTTP. Which statuses can still change is a delivery rule (delivery/statuses.py).

A receipt is *due* when the gateway last learnt its state (`checked_at`: a webhook, a query's first sight, a
poll) at least one period ago, no lease on it is running, and it is younger than the window. Claiming leases
every due receipt of up to `limit` messages in one statement (PostgreSQL: rows another replica is claiming are
skipped, never waited for) and moves `checked_at` to now, so a second claimer in the same period finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, func, select, update

from delivery_gateway.delivery.statuses import may_still_change
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.driver import execute_many
from delivery_gateway.ledger.rows import channel_of, epoch_of
from delivery_gateway.ledger.tables import tracked

Insert = Callable[[Table], Any]  # the dialect's INSERT (ON CONFLICT support), as SqlLedger._insert gives it


@dataclass(frozen=True)
class TrackedReceipt:
    """One receipt reconciliation watches; `status` is the one the gateway last learnt (None: not yet any)."""

    receipt_sid: str
    message_sid: str
    conversation_sid: str
    service_sid: str | None
    channel: str
    status: str | None
    created_epoch: int
    checked_at: float


@dataclass(frozen=True)
class TrackedStats:
    """How many receipts are tracked, how many are due now, and how overdue the most overdue one is (seconds)."""

    tracked: int
    due: int
    lag: float


def _status(record: ReceiptRecord) -> str | None:
    return record.status.value if record.status is not None else None


def tracked_row(record: ReceiptRecord, now: float, service_sid: str | None = None) -> dict[str, Any]:
    return {
        "receipt_sid": record.sid,
        "message_sid": record.message_sid,
        "conversation_sid": record.conversation_sid,
        "service_sid": record.chat_service_sid or service_sid,
        "channel": channel_of(record),
        "status": _status(record),
        "created_epoch": epoch_of(record.date_created, now),
        "checked_at": now,
        "lease_owner": None,
        "lease_until": 0.0,
    }


def can_change(record: ReceiptRecord) -> bool:
    return may_still_change(record.status, channel_of(record))


_STATES_UPSERT: dict[str, Any] = {}  # dialect name -> the upsert of `record_states`


def record_states(
    conn: Connection, insert: Insert, records: Iterable[ReceiptRecord], now: float, service_sid: str | None = None
) -> None:
    """The gateway learnt these receipts' states (a webhook applied, a poll answered): track those that can
    still change (checked now, status as learnt; a running lease is kept), forget the others."""
    keep: list[ReceiptRecord] = []
    drop: list[ReceiptRecord] = []
    for record in records:
        (keep if can_change(record) else drop).append(record)
    if keep:
        stmt = _STATES_UPSERT.get(conn.dialect.name)
        if stmt is None:  # built once per dialect: every applied batch runs it
            stmt = insert(tracked)
            updated: dict[str, Any] = {c: stmt.excluded[c] for c in ("status", "checked_at", "channel")}
            # An event naming no service keeps the scope a query tracked the receipt in.
            updated["service_sid"] = func.coalesce(stmt.excluded.service_sid, tracked.c.service_sid)
            stmt = _STATES_UPSERT[conn.dialect.name] = stmt.on_conflict_do_update(
                index_elements=["receipt_sid"], set_=updated
            )
        execute_many(conn, stmt, [tracked_row(r, now, service_sid) for r in keep])
    if drop:  # one indexed DELETE per receipt, compiled once (an expanding IN list compiles per batch size)
        execute_many(conn, _FORGET_ONE, [{"sid": r.sid} for r in drop])


def start_tracking(
    conn: Connection, insert: Insert, records: Iterable[ReceiptRecord], now: float, service_sid: str | None
) -> int:
    """A query saw these receipts: track those that can still change and are not tracked yet (a tracked one
    keeps its schedule: a query's sight never postpones a poll that may find a lost webhook's change)."""
    rows = [tracked_row(r, now, service_sid) for r in records if can_change(r)]
    if not rows:
        return 0
    stmt = insert(tracked).on_conflict_do_nothing(index_elements=["receipt_sid"])
    return int(conn.execute(stmt, rows).rowcount or 0)


_FORGET_ONE = delete(tracked).where(tracked.c.receipt_sid == bindparam("sid"))  # built once
_FORGET = delete(tracked).where(tracked.c.receipt_sid.in_(bindparam("sids", expanding=True)))  # built once


def forget(conn: Connection, receipt_sids: Sequence[str]) -> None:
    if receipt_sids:
        conn.execute(_FORGET, {"sids": list(receipt_sids)})


def _due(now: float, period: float, window: float) -> Any:
    return and_(
        tracked.c.checked_at <= now - period,
        tracked.c.lease_until <= now,
        tracked.c.created_epoch >= int(now - window),
    )


def claim(
    conn: Connection, owner: str, *, now: float, period: float, lease: float, window: float, limit: int
) -> list[TrackedReceipt]:
    """Leases the due receipts of up to `limit` messages (oldest check first) to `owner` until now + lease, and
    drops receipts older than the window. One statement: concurrent claimers never get the same receipt."""
    conn.execute(delete(tracked).where(tracked.c.created_epoch < int(now - window)))
    due = _due(now, period, window)
    messages = (
        select(tracked.c.message_sid)
        .where(due)
        .group_by(tracked.c.message_sid)
        .order_by(func.min(tracked.c.checked_at), tracked.c.message_sid)
        .limit(limit)
    )
    rows = (
        select(tracked.c.receipt_sid)
        .where(due, tracked.c.message_sid.in_(messages.scalar_subquery()))
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(tracked)
        .where(tracked.c.receipt_sid.in_(rows.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + lease, checked_at=now)
        .returning(*tracked.c)
    )
    claimed = [
        TrackedReceipt(
            receipt_sid=r.receipt_sid,
            message_sid=r.message_sid,
            conversation_sid=r.conversation_sid,
            service_sid=r.service_sid,
            channel=r.channel,
            status=r.status,
            created_epoch=int(r.created_epoch),
            checked_at=float(r.checked_at),
        )
        for r in conn.execute(stmt)
    ]
    return sorted(claimed, key=lambda t: (t.message_sid, t.receipt_sid))


def release(conn: Connection, owner: str, receipt_sids: Sequence[str]) -> None:
    """Ends `owner`'s leases on these receipts (whatever state they are in: a lease that expired and went to
    another claimer is not this owner's any more, and stays)."""
    if receipt_sids:
        conn.execute(
            update(tracked)
            .where(tracked.c.receipt_sid.in_(receipt_sids), tracked.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=0.0)
        )


def stats(conn: Connection, *, now: float, period: float, window: float) -> TrackedStats:
    total = int(conn.execute(select(func.count()).select_from(tracked)).scalar() or 0)
    due = _due(now, period, window)
    row = conn.execute(select(func.count(), func.min(tracked.c.checked_at)).where(due)).one()
    count, oldest = int(row[0] or 0), row[1]
    lag = max(0.0, now - period - float(oldest)) if oldest is not None else 0.0
    return TrackedStats(tracked=total, due=count, lag=lag)
