"""The delivery ledger's tables as SQLAlchemy Core sees them (SQLite and PostgreSQL alike).

Never creates or alters anything itself: the Alembic migrations in `ledger/migrations/` own the schema, and a
test keeps this description and the migrated database identical.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Row ids: BIGINT on PostgreSQL, SQLite's INTEGER PRIMARY KEY (the rowid) on SQLite.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
# SIDs and keys compare byte-wise on both engines (SQLite's BINARY, PostgreSQL's "C"), so orderings agree.
SID = String().with_variant(String(collation="C"), "postgresql")

# Raw webhook bodies, recorded before Twilio gets its 200 and deleted once fully processed.
inbox = Table(
    "ledger_inbox",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("body", Text, nullable=False),
    Column("received_at", Float, nullable=False),  # epoch seconds
    sqlite_autoincrement=True,  # ids are never reused: a late `inbox_done` can only hit its own entry
)

# Dedupe keys of applied events -> the seq of the change they made (0: applied without a change).
seen = Table(
    "ledger_seen",
    metadata,
    Column("key", SID, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),  # recorded at (epoch seconds): retention
    Index("ix_ledger_seen_ts", "ts"),
)

# Each receipt's current state: the JSON record, plus the columns queries filter on.
receipts = Table(
    "ledger_receipts",
    metadata,
    Column("sid", SID, primary_key=True),
    Column("conversation_sid", SID, nullable=False),
    Column("message_sid", SID, nullable=False),
    Column("service_sid", SID),
    Column("participant_sid", SID),
    Column("channel", String(16), nullable=False),
    Column("status", String(16)),
    Column("error_code", Integer),
    Column("updated_epoch", BigInteger, nullable=False),  # Twilio's DateUpdated, else DateCreated, else recorded
    Column("failed_at", BigInteger),  # = updated_epoch while the status is failed/undelivered, else NULL
    Column("record", Text, nullable=False),
    Index("ix_ledger_receipts_message_sid", "message_sid"),
    Index("ix_ledger_receipts_failed", "service_sid", "failed_at", "sid"),
)

# Every status each receipt took (at most once per status), with what reports group by.
history = Table(
    "ledger_history",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("receipt_sid", SID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_code", Integer),
    Column("at", String),  # Twilio's DateUpdated of this status, as sent
    Column("source", String(32), nullable=False),
    Column("recorded_seq", BigInteger, nullable=False),  # the change it made, 0 when it changed nothing
    Column("ts", Float, nullable=False),  # recorded at: retention
    Column("service_sid", SID),
    Column("channel", String(16), nullable=False),
    Column("at_epoch", BigInteger, nullable=False),  # `at` in epoch seconds, else when recorded
    UniqueConstraint("receipt_sid", "status"),
    Index("ix_ledger_history_ts", "ts"),
    Index("ix_ledger_history_report", "service_sid", "at_epoch", "status", "error_code", "channel"),
)

# Hourly counts of `history` rows per service: what makes a 30-day delivery report cost milliseconds.
report_hours = Table(
    "ledger_report_hours",
    metadata,
    Column("service_sid", SID, nullable=False),
    Column("hour", BigInteger, nullable=False),  # epoch seconds of the UTC hour's start
    Column("status", String(16), nullable=False),
    Column("error_code", Integer, nullable=False),  # 0: none
    Column("channel", String(16), nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("service_sid", "hour", "status", "error_code", "channel"),
)

# The change log: every observable change, in sequence order (the cursor subscribers resume from).
changes = Table(
    "ledger_changes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # allocated from ledger_meta.last_seq
    Column("kind", String(16), nullable=False),
    Column("conversation_sid", SID, nullable=False),
    Column("service_sid", SID),
    Column("status", String(16)),  # the receipt's new status, for delivery changes
    Column("payload", Text, nullable=False),
    Column("ts", Float, nullable=False),  # recorded at: retention
    Index("ix_ledger_changes_conversation", "conversation_sid", "seq"),
    Index("ix_ledger_changes_service", "service_sid", "seq"),
    Index("ix_ledger_changes_service_status", "service_sid", "status", "seq"),
)

horizons = Table(
    "ledger_horizons",
    metadata,
    Column("participant_sid", SID, primary_key=True),
    Column("idx", BigInteger, nullable=False),
    Column("at", String),  # Twilio's DateUpdated of the report that set it: the later report wins
)

resends = Table(
    "ledger_resends",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("new_sid", SID, nullable=False, unique=True),
    Column("old_sid", SID, nullable=False),
    Column("conversation_sid", SID),
    Index("ix_ledger_resends_old_sid", "old_sid"),
)

# Receipts seen (by a webhook, a query or reconciliation) in a state that can still change: what reconciliation
# re-reads from Twilio. `checked_at` is when the gateway last learnt the receipt's state; a process polling it
# holds the lease (`lease_owner` until `lease_until`), so replicas never poll the same receipt at once.
tracked = Table(
    "ledger_tracked",
    metadata,
    Column("receipt_sid", SID, primary_key=True),
    Column("message_sid", SID, nullable=False),
    Column("conversation_sid", SID, nullable=False),
    Column("service_sid", SID),  # the Conversation Service to read it from (None: the account's default)
    Column("channel", String(16), nullable=False),
    Column("status", String(16)),  # the status last learnt (a query's or a webhook's)
    Column("created_epoch", BigInteger, nullable=False),  # Twilio's DateCreated, else first seen: the window
    Column("checked_at", Float, nullable=False),  # epoch seconds
    Column("lease_owner", String(64)),
    Column("lease_until", Float, nullable=False),  # epoch seconds; 0: not leased
    Index("ix_ledger_tracked_due", "checked_at"),
    Index("ix_ledger_tracked_message", "message_sid"),
    Index("ix_ledger_tracked_created", "created_epoch"),
)

# Counters: last_seq (the sequence), published_through (what was handed to the publisher), pruned_through.
meta = Table(
    "ledger_meta",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

META_KEYS = ("last_seq", "published_through", "pruned_through")
VERSION_TABLE = "ledger_alembic_version"
