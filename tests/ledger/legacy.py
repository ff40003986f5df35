"""Writes a ledger file the way the previous hand-written SQLite backend did (its schema, its JSON rows).

Test helper only: the rows come from the same merge rules (`plan_batch`), laid out in the old tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from delivery_gateway.ledger.batch import Snapshot, plan_batch
from delivery_gateway.ledger.events import LedgerEvent

# The previous backend's DDL, verbatim.
SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    sid TEXT PRIMARY KEY, message_sid TEXT NOT NULL, conversation_sid TEXT NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_message ON receipts (message_sid);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receipt_sid TEXT NOT NULL, entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_receipt ON history (receipt_sid);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_sid TEXT NOT NULL, kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_conversation ON changes (conversation_sid, seq);
CREATE TABLE IF NOT EXISTS horizons (participant_sid TEXT PRIMARY KEY, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resends (
    id INTEGER PRIMARY KEY AUTOINCREMENT, new_sid TEXT UNIQUE NOT NULL, old_sid TEXT NOT NULL,
    conversation_sid TEXT
);
CREATE INDEX IF NOT EXISTS resends_by_old ON resends (old_sid);
"""
RETENTION_SCHEMA = """
ALTER TABLE seen ADD COLUMN ts REAL;
ALTER TABLE history ADD COLUMN ts REAL;
ALTER TABLE changes ADD COLUMN ts REAL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_ts ON seen (ts);
CREATE INDEX IF NOT EXISTS history_by_ts ON history (ts);
"""


def write_legacy_ledger(
    path: Path,
    events: Sequence[LedgerEvent],
    *,
    retention: bool = True,
    recorded_at: float = 1_767_225_600.0,
    pruned_through: int = 0,
    inbox: Sequence[str] = (),
    resends: Sequence[tuple[str, str, str]] = (),  # (conversation, old, new)
) -> int:
    """Write `events` as the old backend recorded them; returns its last sequence number."""
    plan = plan_batch(events, Snapshot(last_seq=0))
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + (RETENTION_SCHEMA if retention else ""))
    ts = [recorded_at] if retention else []
    tcol = ", ts" if retention else ""
    tmark = ", ?" if retention else ""
    for change in plan.changes:
        db.execute(
            f"INSERT INTO changes (seq, conversation_sid, kind, payload{tcol}) VALUES (?, ?, ?, ?{tmark})",
            [change.seq, change.conversation_sid, change.kind.value, json.dumps(change.payload), *ts],
        )
    for record in plan.receipts.values():
        db.execute(
            "INSERT INTO receipts (sid, message_sid, conversation_sid, record) VALUES (?, ?, ?, ?)",
            (record.sid, record.message_sid, record.conversation_sid, record.to_json()),
        )
    for record, entry in plan.history:
        db.execute(
            f"INSERT INTO history (receipt_sid, entry{tcol}) VALUES (?, ?{tmark})",
            [record.sid, json.dumps(entry.to_dict()), *ts],
        )
    for key, seq in plan.seen.items():
        db.execute(f"INSERT INTO seen (key, seq{tcol}) VALUES (?, ?{tmark})", [key, seq, *ts])
    for participant, (index, _at) in plan.horizons.items():  # the old backend kept no horizon dates
        db.execute("INSERT INTO horizons (participant_sid, idx) VALUES (?, ?)", (participant, index))
    for conversation, old, new in resends:
        db.execute(
            "INSERT INTO resends (new_sid, old_sid, conversation_sid) VALUES (?, ?, ?)", (new, old, conversation)
        )
    for body in inbox:
        db.execute("INSERT INTO inbox (body) VALUES (?)", (body,))
    if pruned_through:
        db.execute("DELETE FROM changes WHERE seq <= ?", (pruned_through,))
        db.execute("INSERT INTO meta (key, value) VALUES ('pruned_through', ?)", (pruned_through,))
    db.commit()
    db.close()
    return plan.last_seq
