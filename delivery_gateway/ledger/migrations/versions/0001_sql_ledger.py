"""The SQL ledger's tables; on SQLite, imports a ledger file written by the previous hand-written backend.

That backend kept tables named inbox, seen, receipts, history, changes, horizons, resends and meta in the same
file (default `delivery-gateway.sqlite3`). Their rows are copied into the new tables in this migration's
transaction (sequence numbers kept, so clients' cursors stay valid), then the old tables are dropped: a failure
leaves the file as it was. Rows recorded before that backend stamped times count as recorded now.

Revision ID: 0001
Revises:
Create Date: 2026-11-02
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.events import ChangeKind, HistoryEntry, LedgerChange
from delivery_gateway.ledger.rows import change_row, history_row, receipt_row, report_key

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SID = sa.String().with_variant(sa.String(collation="C"), "postgresql")
LEGACY_TABLES = ("inbox", "seen", "receipts", "history", "changes", "horizons", "resends", "meta")
CHUNK = 5000


def upgrade() -> None:
    bind = op.get_bind()
    legacy = bind.dialect.name == "sqlite" and _is_legacy(bind)
    _create_tables()
    meta = sa.table("ledger_meta", sa.column("key"), sa.column("value"))
    op.bulk_insert(meta, [{"key": k, "value": 0} for k in ("last_seq", "published_through", "pruned_through")])
    if legacy:
        _import_legacy(bind)


def downgrade() -> None:
    for name in (
        "ledger_meta",
        "ledger_resends",
        "ledger_horizons",
        "ledger_changes",
        "ledger_report_hours",
        "ledger_history",
        "ledger_receipts",
        "ledger_seen",
        "ledger_inbox",
    ):
        op.drop_table(name)


def _create_tables() -> None:
    op.create_table(
        "ledger_inbox",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_inbox"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "ledger_seen",
        sa.Column("key", SID, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ledger_seen"),
    )
    op.create_index("ix_ledger_seen_ts", "ledger_seen", ["ts"])
    op.create_table(
        "ledger_receipts",
        sa.Column("sid", SID, nullable=False),
        sa.Column("conversation_sid", SID, nullable=False),
        sa.Column("message_sid", SID, nullable=False),
        sa.Column("service_sid", SID),
        sa.Column("participant_sid", SID),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("error_code", sa.Integer),
        sa.Column("updated_epoch", sa.BigInteger, nullable=False),
        sa.Column("failed_at", sa.BigInteger),
        sa.Column("record", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("sid", name="pk_ledger_receipts"),
    )
    op.create_index("ix_ledger_receipts_message_sid", "ledger_receipts", ["message_sid"])
    op.create_index("ix_ledger_receipts_failed", "ledger_receipts", ["service_sid", "failed_at", "sid"])
    op.create_table(
        "ledger_history",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("receipt_sid", SID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer),
        sa.Column("at", sa.String),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_seq", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("service_sid", SID),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("at_epoch", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_history"),
        sa.UniqueConstraint("receipt_sid", "status", name="uq_ledger_history_receipt_sid_status"),
    )
    op.create_index("ix_ledger_history_ts", "ledger_history", ["ts"])
    op.create_index(
        "ix_ledger_history_report",
        "ledger_history",
        ["service_sid", "at_epoch", "status", "error_code", "channel"],
    )
    op.create_table(
        "ledger_report_hours",
        sa.Column("service_sid", SID, nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "service_sid", "hour", "status", "error_code", "channel", name="pk_ledger_report_hours"
        ),
    )
    op.create_table(
        "ledger_changes",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("conversation_sid", SID, nullable=False),
        sa.Column("service_sid", SID),
        sa.Column("status", sa.String(16)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_ledger_changes"),
    )
    op.create_index("ix_ledger_changes_conversation", "ledger_changes", ["conversation_sid", "seq"])
    op.create_index("ix_ledger_changes_service", "ledger_changes", ["service_sid", "seq"])
    op.create_index("ix_ledger_changes_service_status", "ledger_changes", ["service_sid", "status", "seq"])
    op.create_table(
        "ledger_horizons",
        sa.Column("participant_sid", SID, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("participant_sid", name="pk_ledger_horizons"),
    )
    op.create_table(
        "ledger_resends",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("new_sid", SID, nullable=False),
        sa.Column("old_sid", SID, nullable=False),
        sa.Column("conversation_sid", SID),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_resends"),
        sa.UniqueConstraint("new_sid", name="uq_ledger_resends_new_sid"),
    )
    op.create_index("ix_ledger_resends_old_sid", "ledger_resends", ["old_sid"])
    op.create_table(
        "ledger_meta",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ledger_meta"),
    )


# --- the previous SQLite backend's data ---


def _is_legacy(bind: sa.Connection) -> bool:
    inspector = sa.inspect(bind)
    if not inspector.has_table("changes"):
        return False
    return "payload" in {c["name"] for c in inspector.get_columns("changes")}


def _chunks(bind: sa.Connection, table: str, key: str, columns: str) -> Iterator[Sequence[sa.Row[Any]]]:
    """Every row of a legacy table in `key` order, CHUNK rows at a time (a big file never sits in memory)."""
    last = None
    while True:
        where = "" if last is None else f" WHERE {key} > :last"
        rows = bind.execute(
            sa.text(f"SELECT {key} AS _k, {columns} FROM {table}{where} ORDER BY {key} LIMIT {CHUNK}"),
            {"last": last},
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1]._k


def _import_legacy(bind: sa.Connection) -> None:
    inspector = sa.inspect(bind)
    now = time.time()

    def has(table: str) -> bool:
        return inspector.has_table(table)

    def ts_of(table: str) -> str:
        columns = {c["name"] for c in inspector.get_columns(table)}
        return "ts" if "ts" in columns else "NULL AS ts"

    def insert(table: str, rows: list[dict]) -> None:
        if rows:
            bind.execute(sa.table(table, *(sa.column(c) for c in rows[0])).insert(), rows)

    if has("inbox"):
        for rows in _chunks(bind, "inbox", "id", "id, body"):
            insert("ledger_inbox", [{"id": r.id, "body": r.body, "received_at": now} for r in rows])
    if has("seen"):
        for rows in _chunks(bind, "seen", "key", f"key, seq, {ts_of('seen')}"):
            insert("ledger_seen", [{"key": r.key, "seq": r.seq, "ts": r.ts or now} for r in rows])

    receipts: dict[str, ReceiptRecord] = {}
    if has("receipts"):
        for rows in _chunks(bind, "receipts", "sid", "sid, record"):
            records = [ReceiptRecord.from_json(r.record) for r in rows]
            receipts.update((record.sid, record) for record in records)
            insert("ledger_receipts", [receipt_row(record, now) for record in records])

    counts: Counter = Counter()
    if has("history"):
        kept: set[tuple[str, str]] = set()
        for rows in _chunks(bind, "history", "id", f"receipt_sid, entry, {ts_of('history')}"):
            out = []
            for r in rows:
                entry = HistoryEntry.from_dict(json.loads(r.entry))
                record = receipts.get(r.receipt_sid)
                if record is None or (r.receipt_sid, entry.status.value) in kept:
                    continue  # a history without its receipt, or a repeated status: nothing to report
                kept.add((r.receipt_sid, entry.status.value))
                row = history_row(record, entry, r.ts or now)
                out.append(row)
                key = report_key(row)
                if key is not None:
                    counts[key] += 1
            insert("ledger_history", out)
    report_rows = [
        {"service_sid": s, "hour": h, "status": st, "error_code": e, "channel": c, "count": n}
        for (s, h, st, e, c), n in counts.items()
    ]
    for start in range(0, len(report_rows), CHUNK):
        insert("ledger_report_hours", report_rows[start : start + CHUNK])

    last_seq = 0
    if has("changes"):
        for rows in _chunks(bind, "changes", "seq", f"seq, kind, conversation_sid, payload, {ts_of('changes')}"):
            out = []
            for r in rows:
                change = LedgerChange(int(r.seq), ChangeKind(r.kind), r.conversation_sid, json.loads(r.payload))
                out.append(change_row(change, r.ts or now))
                last_seq = max(last_seq, int(r.seq))
            insert("ledger_changes", out)
        # The old AUTOINCREMENT counter outlives pruned changes: new cursors must stay above every old one.
        if has("sqlite_sequence"):
            counter = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")).scalar()
            last_seq = max(last_seq, int(counter or 0))
    if has("horizons"):
        for rows in _chunks(bind, "horizons", "participant_sid", "participant_sid, idx"):
            insert("ledger_horizons", [{"participant_sid": r.participant_sid, "idx": r.idx} for r in rows])
    if has("resends"):
        for rows in _chunks(bind, "resends", "id", "id, new_sid, old_sid, conversation_sid"):
            insert(
                "ledger_resends",
                [
                    {"id": r.id, "new_sid": r.new_sid, "old_sid": r.old_sid, "conversation_sid": r.conversation_sid}
                    for r in rows
                ],
            )
    pruned_through = 0
    if has("meta"):
        pruned_through = bind.execute(sa.text("SELECT value FROM meta WHERE key = 'pruned_through'")).scalar() or 0

    meta = sa.table("ledger_meta", sa.column("key"), sa.column("value"))
    for name, value in (("last_seq", last_seq), ("published_through", last_seq), ("pruned_through", pruned_through)):
        bind.execute(meta.update().where(meta.c.key == name).values(value=int(value)))
    for table in LEGACY_TABLES:
        if has(table):
            op.drop_table(table)
