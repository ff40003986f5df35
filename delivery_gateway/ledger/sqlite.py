"""SQLite delivery ledger (`sqlite:///path`): the embedded, durable default for a single gateway process.

Never touches the database from the event loop: every call runs on one dedicated writer thread.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.base import SyncLedgerCore, sort_history
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
)

T = TypeVar("T")

_SCHEMA = """
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

# Retention (added later): when each row was recorded, and how far the change log was pruned.
_TIMESTAMPED = ("seen", "history", "changes")
_RETENTION_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_ts ON seen (ts);
CREATE INDEX IF NOT EXISTS history_by_ts ON history (ts);
"""
PRUNE_BATCH = 2000  # rows deleted per writer-thread job: applies interleave between batches


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `sqlite:///:memory:` -> a path for sqlite3."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]
    return path or ":memory:"


class SqliteLedger(SyncLedgerCore):
    def __init__(self, path: str, *, synchronous: str = "NORMAL", clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock  # epoch seconds stamped on what `prune` ages out (tests inject one)
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteLedger:
        """`sqlite:///path[?synchronous=FULL]`: NORMAL (default) survives a killed process, FULL power loss too."""
        synchronous = parse_qs(urlsplit(url).query).get("synchronous", ["NORMAL"])[0].upper()
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"sqlite ledger: synchronous={synchronous!r} (expected NORMAL, FULL or EXTRA)")
        return cls(sqlite_path(url), synchronous=synchronous)

    # --- lifecycle ---
    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        await self._run(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; FULL also survives power loss.
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._migrate(conn)
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Adds the `ts` columns to a ledger created before retention; its old rows count from now."""
        now = self.clock()
        for table in _TIMESTAMPED:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if "ts" not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN ts REAL")
                conn.execute(f"UPDATE {table} SET ts = ? WHERE ts IS NULL", (now,))
        conn.executescript(_RETENTION_SCHEMA)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close_conn)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def ping(self) -> None:
        """Readiness: the database answers a query on the writer thread."""
        await self._run(lambda: self._db.execute("SELECT 1").fetchone())

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., T], *args) -> T:
        if self._executor is None:
            raise RuntimeError("SqliteLedger used before start()")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "SqliteLedger used before start()"
        return self._conn

    def _transaction(self, fn: Callable[..., T], *args) -> T:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

    # --- primitives (called inside a transaction, on the writer thread) ---
    def _seen(self, key: str) -> int | None:
        row = self._db.execute("SELECT seq FROM seen WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _mark_seen(self, key: str, seq: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO seen (key, seq, ts) VALUES (?, ?, ?)", (key, seq, self.clock()))

    def _get_receipt(self, sid: str) -> ReceiptRecord | None:
        row = self._db.execute("SELECT record FROM receipts WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else ReceiptRecord.from_json(row[0])

    def _put_receipt(self, record: ReceiptRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO receipts (sid, message_sid, conversation_sid, record) VALUES (?, ?, ?, ?)",
            (record.sid, record.message_sid, record.conversation_sid, record.to_json()),
        )

    def _add_history(self, receipt_sid: str, entry: HistoryEntry) -> None:
        self._db.execute(
            "INSERT INTO history (receipt_sid, entry, ts) VALUES (?, ?, ?)",
            (receipt_sid, json.dumps(entry.to_dict()), self.clock()),
        )

    def _append_change(self, kind: ChangeKind, conversation_sid: str, payload: dict) -> LedgerChange:
        text = json.dumps(payload, separators=(",", ":"))
        cur = self._db.execute(
            "INSERT INTO changes (conversation_sid, kind, payload, ts) VALUES (?, ?, ?, ?)",
            (conversation_sid, kind.value, text, self.clock()),
        )
        return LedgerChange(int(cur.lastrowid or 0), kind, conversation_sid, payload)

    def _get_change(self, seq: int) -> LedgerChange | None:
        row = self._db.execute(
            "SELECT seq, kind, conversation_sid, payload FROM changes WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else _change(row)

    def _get_horizon(self, participant_sid: str) -> int | None:
        row = self._db.execute("SELECT idx FROM horizons WHERE participant_sid = ?", (participant_sid,)).fetchone()
        return None if row is None else int(row[0])

    def _put_horizon(self, participant_sid: str, index: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO horizons (participant_sid, idx) VALUES (?, ?)", (participant_sid, index)
        )

    # --- async contract ---
    async def inbox_add(self, body: str) -> int:
        def add() -> int:
            return int(self._db.execute("INSERT INTO inbox (body) VALUES (?)", (body,)).lastrowid or 0)

        return await self._run(add)

    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]:
        def pending() -> list[tuple[int, str]]:
            rows = self._db.execute("SELECT id, body FROM inbox ORDER BY id LIMIT ?", (limit,)).fetchall()
            return [(int(i), b) for i, b in rows]

        return await self._run(pending)

    async def inbox_done(self, entry_id: int) -> None:
        await self._run(lambda: self._db.execute("DELETE FROM inbox WHERE id = ?", (entry_id,)))

    async def apply(self, event: LedgerEvent) -> ApplyResult:
        return await self._run(self._transaction, self.apply_sync, event)

    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]:
        def read() -> list[LedgerChange]:
            rows = self._db.execute(
                "SELECT seq, kind, conversation_sid, payload FROM changes"
                " WHERE conversation_sid = ? AND seq > ? ORDER BY seq LIMIT ?",
                (conversation_sid, after_seq, limit),
            ).fetchall()
            return [_change(r) for r in rows]

        return await self._run(read)

    async def last_seq(self) -> int:
        def read() -> int:
            # AUTOINCREMENT's counter survives pruning every row (MAX(seq) would not).
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    async def receipt(self, sid: str) -> ReceiptRecord | None:
        return await self._run(self._get_receipt, sid)

    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]:
        def read() -> list[ReceiptRecord]:
            rows = self._db.execute(
                "SELECT record FROM receipts WHERE message_sid = ? ORDER BY sid", (message_sid,)
            ).fetchall()
            return [ReceiptRecord.from_json(r[0]) for r in rows]

        return await self._run(read)

    async def history(self, receipt_sid: str) -> list[HistoryEntry]:
        return (await self.history_many([receipt_sid]))[receipt_sid]

    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]:
        sids = list(dict.fromkeys(receipt_sids))

        def read() -> dict[str, list[HistoryEntry]]:
            out: dict[str, list[HistoryEntry]] = {sid: [] for sid in sids}
            for start in range(0, len(sids), 500):
                chunk = sids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT receipt_sid, entry FROM history WHERE receipt_sid IN ({marks}) ORDER BY id",
                    chunk,
                ).fetchall()
                for sid, entry in rows:
                    out[sid].append(HistoryEntry.from_dict(json.loads(entry)))
            return {sid: sort_history(entries) for sid, entries in out.items()}

        return await self._run(read)

    async def read_horizon(self, participant_sid: str) -> int | None:
        return await self._run(self._get_horizon, participant_sid)

    async def record_resend(self, conversation_sid: str, old_sid: str, new_sid: str) -> None:
        await self._run(
            lambda: self._db.execute(
                "INSERT OR IGNORE INTO resends (new_sid, old_sid, conversation_sid) VALUES (?, ?, ?)",
                (new_sid, old_sid, conversation_sid),
            )
        )

    async def resent_as(self, old_sid: str) -> list[str]:
        def read() -> list[str]:
            rows = self._db.execute("SELECT new_sid FROM resends WHERE old_sid = ? ORDER BY id", (old_sid,))
            return [r[0] for r in rows.fetchall()]

        return await self._run(read)

    async def resend_of(self, new_sid: str) -> str | None:
        def read() -> str | None:
            row = self._db.execute("SELECT old_sid FROM resends WHERE new_sid = ?", (new_sid,)).fetchone()
            return None if row is None else row[0]

        return await self._run(read)

    # --- retention ---
    async def prune(self, before: datetime) -> PruneResult:
        """Deletes in batches of PRUNE_BATCH, each its own writer-thread transaction, so applies interleave."""
        cutoff = before.timestamp()
        changes = dedupe = history = 0
        while (n := await self._run(self._transaction, self._prune_changes, cutoff)) > 0:
            changes += n
        while (n := await self._run(self._transaction, self._prune_table, "seen", "key", cutoff)) > 0:
            dedupe += n
        while (n := await self._run(self._transaction, self._prune_table, "history", "id", cutoff)) > 0:
            history += n
        return PruneResult(changes, dedupe, history, await self.pruned_through())

    def _prune_changes(self, cutoff: float) -> int:
        """One batch of the change log's oldest prefix: stops at the first change recorded at/after `cutoff`."""
        rows = self._db.execute("SELECT seq, ts FROM changes ORDER BY seq LIMIT ?", (PRUNE_BATCH,)).fetchall()
        last = None
        for seq, ts in rows:
            if ts is not None and ts >= cutoff:
                break
            last = int(seq)
        if last is None:
            return 0
        count = self._db.execute("DELETE FROM changes WHERE seq <= ?", (last,)).rowcount
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('pruned_through', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
            (last,),
        )
        return count

    def _prune_table(self, table: str, key: str, cutoff: float) -> int:
        return self._db.execute(
            f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE ts < ? LIMIT ?)",
            (cutoff, PRUNE_BATCH),
        ).rowcount

    async def pruned_through(self) -> int:
        def read() -> int:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)


def _change(row: tuple) -> LedgerChange:
    seq, kind, conversation_sid, payload = row
    return LedgerChange(int(seq), ChangeKind(kind), conversation_sid, json.loads(payload))
