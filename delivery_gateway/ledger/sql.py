"""The delivery ledger on SQLAlchemy Core (async): SQLite (embedded) or PostgreSQL (several replicas).

Never commits a change out of sequence order, and never lets a later change reach the publisher before an
earlier one: every change-appending transaction and its `after_commit` hook run under one append lock (SQLite:
an exclusive lock on a file beside the database, shared by every process on the machine; PostgreSQL: a session
advisory lock shared by every replica on the database). Never talks HTTP, caches or pub/sub itself.

Each operation's statements are one synchronous function of a `Connection`, written once for both engines and
run whole by `_run`: on SQLite's own thread (ledger/sqlite_thread.py, one hand-off per operation), on
PostgreSQL through `AsyncConnection.run_sync` (asyncpg underneath).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.ledger import tracking
from delivery_gateway.ledger.base import AfterCommit, LedgerUnavailable, sort_history
from delivery_gateway.ledger.batch import BatchPlan, Snapshot, plan_batch
from delivery_gateway.ledger.driver import execute_many, execute_one, rows_in, rows_of
from delivery_gateway.ledger.events import (
    ApplyResult,
    DeliveryEvent,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
    ReadHorizonEvent,
)
from delivery_gateway.ledger.migrate import MigrationResult, migrate, migrate_connection
from delivery_gateway.ledger.reports import (
    FailedDeliveryPage,
    ReportDimension,
    ReportRow,
    failed_page,
    failed_statement,
    merge_report_rows,
    report_statements,
)
from delivery_gateway.ledger.rows import (
    HOUR,
    change_from_row,
    change_from_values,
    change_row,
    history_entry,
    history_row,
    receipt_row,
    report_key,
)
from delivery_gateway.ledger.sqlite_thread import SqliteThread
from delivery_gateway.ledger.store import StoreUrl, create_engine, parse_store_url
from delivery_gateway.ledger.tables import (
    changes,
    history,
    horizons,
    inbox,
    meta,
    receipts,
    report_hours,
    resends,
    seen,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

IN_CHUNK = 500  # values per IN (...) list
PRUNE_BATCH = 2000  # rows deleted per transaction: applies interleave between batches
INBOX_BATCH = 500  # inbox bodies written per group commit
SQLITE_INSERT_ROWS = 5000  # inbox rows per SQLite statement (2 bound values each; SQLite allows 32,766)
# Receipts a query made this process track: seen again (same status) within TRACKED_MEMO_SECONDS, no write at all.
# A subscription's every event re-reads its receipts; without this each event would be a write transaction.
TRACKED_MEMO_SIZE = 10_000
TRACKED_MEMO_SECONDS = 60.0


class SqlLedger:
    """`DeliveryLedger` on one SQL store. Build with `SqlLedger(url)` (or `create_ledger(url)`), then `start()`."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.store: StoreUrl = parse_store_url(url)
        self.clock = clock  # epoch seconds stamped on what `prune` ages out (tests inject one)
        self.migration: MigrationResult | None = None
        self._engine: AsyncEngine | None = None  # PostgreSQL
        self._sqlite: SqliteThread | None = None  # SQLite
        self._append_lock = asyncio.Lock()  # this process's change appends, one at a time
        self._inbox_waiting: list[tuple[str, asyncio.Future[int]]] = []
        self._inbox_flusher: asyncio.Task | None = None
        self._file_lock: FileLock | None = None  # SQLite file: the append lock across processes
        self._tracked_memo: OrderedDict[tuple[str, str | None], float] = OrderedDict()  # -> when written

    def __repr__(self) -> str:
        return f"SqlLedger({self.store.display!r})"

    @property
    def engine_name(self) -> str:
        return self.store.engine

    # --- lifecycle ---

    async def start(self) -> None:
        """Connect and migrate the schema to the head revision (idempotent)."""
        if self._engine is not None or self._sqlite is not None:
            return
        database = self.store.url.database
        try:
            if self.store.engine == "sqlite":
                if not self.store.memory and database:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                self._sqlite = SqliteThread(self.store)
                self.migration = await self._sqlite.run(lambda conn: migrate_connection(conn, self.store), write=True)
            else:
                self._engine = create_engine(self.store)
                self.migration = await migrate(self._engine, self.store)
        except Exception as exc:
            await self._dispose()
            raise LedgerUnavailable(f"ledger store {self.store.display}: {type(exc).__name__}: {exc}") from exc
        if self.store.engine == "sqlite" and not self.store.memory and database:
            self._file_lock = FileLock(database + "-append.lock")

    async def close(self) -> None:
        if self._engine is None and self._sqlite is None:
            return
        if self._inbox_flusher is not None:
            with contextlib.suppress(Exception):
                await self._inbox_flusher
        await self._dispose()
        if self._file_lock is not None:
            self._file_lock.close()
            self._file_lock = None

    async def _dispose(self) -> None:
        engine, self._engine = self._engine, None
        sqlite_thread, self._sqlite = self._sqlite, None
        if engine is not None:
            await engine.dispose()
        if sqlite_thread is not None:
            await sqlite_thread.close()

    async def ping(self) -> None:
        """Readiness: the store answers a query."""
        await self._read(text("SELECT 1"))

    # --- running operations ---

    async def _run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        """`fn(connection)`, whole: in one transaction with `write` (committed when it returns), else as reads
        (SQLite: autocommit, so a lone write statement commits by itself)."""
        if self._sqlite is not None:
            return await self._sqlite.run(fn, write=write)
        if self._engine is None:
            raise RuntimeError("SqlLedger used before start()")
        async with self._engine.connect() as conn:
            if not write:
                return await conn.run_sync(fn)
            async with conn.begin():
                return await conn.run_sync(fn)

    async def _run_append(self, locked: AsyncConnection | None, fn: Callable[[Connection], T]) -> T:
        """`fn` in a write transaction inside the append section (PostgreSQL: on the connection holding its lock)."""
        if locked is None:
            return await self._run(fn, write=True)
        async with locked.begin():
            return await locked.run_sync(fn)

    async def _read(self, statement: Any, params: Any = None) -> list[Any]:
        return await self._run(lambda conn: list(conn.execute(statement, params).all()))

    @contextlib.asynccontextmanager
    async def _append_section(self) -> AsyncIterator[AsyncConnection | None]:
        """Held while a batch commits and its hook runs. PostgreSQL: yields the connection holding the lock."""
        async with self._append_lock:
            if self.store.engine == "sqlite":
                if self._file_lock is None:  # in memory: this ledger is the only one
                    yield None
                    return
                await self._file_lock.acquire()
                try:
                    yield None
                finally:
                    self._file_lock.release()
                return
            if self._engine is None:
                raise RuntimeError("SqlLedger used before start()")
            conn = await self._engine.connect()
            key = {"key": self.store.lock_key}
            try:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), key)
                await conn.commit()
            except BaseException:
                await _discard(conn)
                raise
            try:
                yield conn
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                    await conn.commit()
                    await conn.close()
                except BaseException:
                    await _discard(conn)  # the session ends: PostgreSQL releases its lock
                    raise

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self.store.engine == "postgresql" else sqlite.insert)(table)

    # --- inbox ---

    async def inbox_add(self, body: str) -> int:
        """Durably records one raw webhook body; concurrent calls share one commit (group commit)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._inbox_waiting.append((body, future))
        if self._inbox_flusher is None or self._inbox_flusher.done():
            self._inbox_flusher = asyncio.create_task(self._flush_inbox(), name="ledger-inbox-commit")
        return await future

    async def _flush_inbox(self) -> None:
        while self._inbox_waiting:
            batch, self._inbox_waiting = self._inbox_waiting[:INBOX_BATCH], self._inbox_waiting[INBOX_BATCH:]
            try:
                ids = await self.inbox_add_many([body for body, _ in batch])
            except Exception as exc:  # every caller of the batch gets the store's error (the endpoint: 503)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled: nobody waits forever
                for _, future in batch + self._inbox_waiting:
                    future.cancel()
                raise
            for (_, future), entry_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(entry_id)

    async def inbox_add_many(self, bodies: Sequence[str]) -> list[int]:
        """Records raw webhook bodies in one transaction; their entry ids, in order."""
        if not bodies:
            return []
        now = self.clock()
        if self.store.engine == "sqlite":
            chunks = [bodies[i : i + SQLITE_INSERT_ROWS] for i in range(0, len(bodies), SQLITE_INSERT_ROWS)]
            # A write operation: it commits with the other writes waiting for the ledger's thread (group commit).
            return await self._run(lambda conn: _sqlite_inbox_insert(conn, chunks, now), write=True)
        rows = [{"body": body, "received_at": now} for body in bodies]
        stmt = insert(inbox).returning(inbox.c.id, sort_by_parameter_order=True)
        return await self._run(lambda conn: [int(row.id) for row in conn.execute(stmt, rows).all()], write=True)

    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]:
        rows = await self._read(select(inbox.c.id, inbox.c.body).order_by(inbox.c.id).limit(limit))
        return [(int(r.id), r.body) for r in rows]

    async def inbox_done(self, entry_id: int) -> None:
        await self.inbox_done_many([entry_id])

    async def inbox_done_many(self, entry_ids: Iterable[int]) -> None:
        ids = sorted(set(entry_ids))
        if not ids:
            return
        # SQLite commits a lone statement by itself (autocommit): no BEGIN and COMMIT around one DELETE.
        await self._run(
            lambda conn: _delete_inbox(conn, ids), write=self.store.engine != "sqlite" or len(ids) > IN_CHUNK
        )

    # --- applying events ---

    async def apply(self, event: LedgerEvent) -> ApplyResult:
        return (await self.apply_many([event]))[0]

    async def apply_many(
        self,
        events: Iterable[LedgerEvent],
        *,
        after_commit: AfterCommit | None = None,
        inbox_done: Sequence[int] = (),
    ) -> list[ApplyResult]:
        """Applies `events` in one transaction, in order; one result per event (see DeliveryLedger)."""
        batch = list(events)
        done = sorted(set(inbox_done))

        def transaction(conn: Connection) -> tuple[BatchPlan, int, list[LedgerChange]]:
            snapshot, published_through = self._snapshot(conn, batch)
            plan = plan_batch(batch, snapshot)
            self._write_plan(conn, plan, snapshot)
            unpublished: list[LedgerChange] = []
            if published_through < snapshot.last_seq:  # committed by a process that died before publishing
                unpublished = self._changes_between(conn, published_through, snapshot.last_seq)
            unpublished += plan.changes
            if after_commit is None:
                if plan.last_seq > published_through:
                    self._set_meta(conn, "published_through", plan.last_seq)
                _delete_inbox(conn, done)
            return plan, published_through, unpublished

        async with self._append_section() as locked:
            plan, published_through, unpublished = await self._run_append(locked, transaction)
            if after_commit is not None:
                try:
                    await after_commit(plan.results, unpublished)
                except Exception:
                    log.exception("after-commit hook failed for changes %s", [c.seq for c in unpublished])
                if plan.last_seq > published_through or done:
                    await self._mark_published(
                        locked, plan.last_seq if plan.last_seq > published_through else None, done
                    )
        return plan.results

    async def publish_pending(self, after_commit: AfterCommit) -> int:
        """Hands `after_commit` every committed change never handed to a publisher (a process died between
        commit and publish), in sequence order; how many. The gateway calls it at start-up."""
        pending: list[LedgerChange] = []

        async def collect(results: Sequence[ApplyResult], unpublished: Sequence[LedgerChange]) -> None:
            pending.extend(unpublished)
            await after_commit(results, unpublished)

        await self.apply_many([], after_commit=collect)
        return len(pending)

    async def _mark_published(self, locked: AsyncConnection | None, seq: int | None, inbox_done: Sequence[int]) -> None:
        """After the hook: the changes through `seq` count as published, and the inbox entries they came from are
        done, in one transaction."""

        def mark(conn: Connection) -> None:
            if seq is not None:
                self._set_meta(conn, "published_through", seq)
            _delete_inbox(conn, inbox_done)

        await self._run_append(locked, mark)

    def _set_meta(self, conn: Connection, key: str, value: int) -> None:
        execute_one(conn, _SET_META, {"meta_key": key, "meta_value": value})

    def _snapshot(self, conn: Connection, events: list[LedgerEvent]) -> tuple[Snapshot, int]:
        """Everything `events` can touch, rows locked (SELECT … FOR UPDATE on PostgreSQL). Rows are read by
        position (ledger/driver.py: on SQLite straight through the driver)."""
        counters = {key: int(value) for key, value in rows_of(conn, _SNAPSHOT_COUNTERS)}
        snapshot = Snapshot(last_seq=counters["last_seq"])
        if not events:
            return snapshot, counters["published_through"]
        keys = list(dict.fromkeys(e.dedupe_key for e in events))
        for key_chunk in _chunks(keys):
            for key, seq in rows_in(conn, _SNAPSHOT_SEEN, key_chunk):
                snapshot.seen[key] = int(seq)
        originals = sorted({seq for seq in snapshot.seen.values() if seq > 0})
        for seq_chunk in _chunks(originals):
            for seq, kind, conversation_sid, payload in rows_in(conn, _SNAPSHOT_CHANGES, seq_chunk):
                snapshot.changes[int(seq)] = change_from_values(seq, kind, conversation_sid, payload)
        receipt_sids = list(dict.fromkeys(e.receipt_sid for e in events if isinstance(e, DeliveryEvent)))
        for sid_chunk in _chunks(receipt_sids):
            for sid, record in rows_in(conn, _SNAPSHOT_RECEIPTS, sid_chunk):
                snapshot.receipts[sid] = ReceiptRecord.from_json(record)
        known = list(snapshot.receipts)  # a receipt has history only once it has a record
        for sid_chunk in _chunks(known):
            snapshot.history.update((sid, status) for sid, status in rows_in(conn, _SNAPSHOT_HISTORY, sid_chunk))
        participants = list(dict.fromkeys(e.participant_sid for e in events if isinstance(e, ReadHorizonEvent)))
        for sid_chunk in _chunks(participants):
            for participant_sid, idx, at in rows_in(conn, _SNAPSHOT_HORIZONS, sid_chunk):
                snapshot.horizons[participant_sid] = (int(idx), at)
        return snapshot, counters["published_through"]

    def _write_plan(self, conn: Connection, plan: BatchPlan, snapshot: Snapshot) -> None:
        now = self.clock()
        statements = _write_statements(conn.dialect.name)
        if plan.changes:
            execute_many(conn, statements.changes, [change_row(c, now) for c in plan.changes])
        if plan.receipts:
            execute_many(conn, statements.receipts, [receipt_row(r, now) for r in plan.receipts.values()])
        if plan.history:
            rows = [history_row(record, entry, now) for record, entry in plan.history]
            execute_many(conn, statements.history, rows)
            counts = Counter(key for key in map(report_key, rows) if key is not None)
            if counts:
                execute_many(
                    conn,
                    statements.report_hours,
                    [
                        {"service_sid": s, "hour": h, "status": st, "error_code": e, "channel": ch, "count": n}
                        for (s, h, st, e, ch), n in counts.items()
                    ],
                )
        if plan.seen:
            execute_many(conn, statements.seen, [{"key": k, "seq": s, "ts": now} for k, s in plan.seen.items()])
        if plan.horizons:
            rows = [{"participant_sid": p, "idx": i, "at": at} for p, (i, at) in plan.horizons.items()]
            execute_many(conn, statements.horizons, rows)
        if plan.receipts:  # what reconciliation re-reads: the same transaction, so no state goes untracked
            tracking.record_states(conn, self._insert, plan.receipts.values(), now)
        if plan.last_seq != snapshot.last_seq:
            self._set_meta(conn, "last_seq", plan.last_seq)

    def _changes_between(self, conn: Connection, after: int, through: int) -> list[LedgerChange]:
        stmt = (
            select(changes.c.seq, changes.c.kind, changes.c.conversation_sid, changes.c.payload)
            .where(changes.c.seq > after, changes.c.seq <= through)
            .order_by(changes.c.seq)
        )
        return [change_from_row(row) for row in conn.execute(stmt)]

    # --- reading back ---

    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]:
        stmt = (
            select(changes.c.seq, changes.c.kind, changes.c.conversation_sid, changes.c.payload)
            .where(changes.c.conversation_sid == conversation_sid, changes.c.seq > after_seq)
            .order_by(changes.c.seq)
            .limit(limit)
        )
        return [change_from_row(row) for row in await self._read(stmt)]

    async def service_changes_after(
        self,
        service_sid: str,
        after_seq: int,
        *,
        statuses: Collection[DeliveryStatus | str] | None = None,
        limit: int = 1000,
    ) -> list[LedgerChange]:
        """See DeliveryLedger.service_changes_after."""
        stmt = select(changes.c.seq, changes.c.kind, changes.c.conversation_sid, changes.c.payload).where(
            changes.c.service_sid == service_sid, changes.c.seq > after_seq
        )
        if statuses:
            values = sorted({DeliveryStatus(s).value for s in statuses})
            stmt = stmt.where(changes.c.status.in_(values))
        stmt = stmt.order_by(changes.c.seq).limit(limit)
        return [change_from_row(row) for row in await self._read(stmt)]

    async def last_seq(self) -> int:
        return await self._meta("last_seq")

    async def _meta(self, key: str) -> int:
        rows = await self._read(select(meta.c.value).where(meta.c.key == key))
        return int(rows[0].value) if rows else 0

    async def receipt(self, sid: str) -> ReceiptRecord | None:
        rows = await self._read(select(receipts.c.record).where(receipts.c.sid == sid))
        return ReceiptRecord.from_json(rows[0].record) if rows else None

    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]:
        stmt = select(receipts.c.record).where(receipts.c.message_sid == message_sid).order_by(receipts.c.sid)
        return [ReceiptRecord.from_json(row.record) for row in await self._read(stmt)]

    async def history(self, receipt_sid: str) -> list[HistoryEntry]:
        return (await self.history_many([receipt_sid]))[receipt_sid]

    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]:
        sids = list(dict.fromkeys(receipt_sids))
        found: dict[str, list[HistoryEntry]] = {sid: [] for sid in sids}
        columns = (history.c.receipt_sid, history.c.status, history.c.error_code, history.c.at, history.c.source)

        def read(conn: Connection) -> None:
            for chunk in _chunks(sids):
                stmt = select(*columns, history.c.recorded_seq).where(history.c.receipt_sid.in_(chunk))
                for row in conn.execute(stmt.order_by(history.c.id)):
                    found[row.receipt_sid].append(history_entry(row))

        await self._run(read)
        return {sid: sort_history(entries) for sid, entries in found.items()}

    async def read_horizon(self, participant_sid: str) -> int | None:
        rows = await self._read(select(horizons.c.idx).where(horizons.c.participant_sid == participant_sid))
        return int(rows[0].idx) if rows else None

    # --- resend links ---

    async def record_resend(self, conversation_sid: str, old_sid: str, new_sid: str) -> None:
        stmt = self._insert(resends).on_conflict_do_nothing(index_elements=["new_sid"])
        values = {"new_sid": new_sid, "old_sid": old_sid, "conversation_sid": conversation_sid}
        await self._run(lambda conn: conn.execute(stmt, values), write=True)

    async def resent_as(self, old_sid: str) -> list[str]:
        stmt = select(resends.c.new_sid).where(resends.c.old_sid == old_sid).order_by(resends.c.id)
        return [row.new_sid for row in await self._read(stmt)]

    async def resend_of(self, new_sid: str) -> str | None:
        rows = await self._read(select(resends.c.old_sid).where(resends.c.new_sid == new_sid))
        return rows[0].old_sid if rows else None

    # --- tracked receipts (reconciliation) ---

    async def track_receipts(self, receipts: Iterable[ReceiptRecord], *, service_sid: str | None = None) -> int:
        """See DeliveryLedger.track_receipts. No write at all when none of them can still change, nor when this
        process tracked each of them (in the same status) less than TRACKED_MEMO_SECONDS ago: tracking only ever
        inserts what is not tracked yet, and a row gone since (a final status, the window) stays gone harmlessly
        until the memo entry expires."""
        now = self.clock()
        records = [r for r in receipts if tracking.can_change(r) and not self._tracked_lately(r, now)]
        if not records:
            return 0
        count = await self._run(
            lambda conn: tracking.start_tracking(conn, self._insert, records, self.clock(), service_sid), write=True
        )
        for record in records:
            key = (record.sid, record.status.value if record.status is not None else None)
            self._tracked_memo[key] = now
            self._tracked_memo.move_to_end(key)
        while len(self._tracked_memo) > TRACKED_MEMO_SIZE:
            self._tracked_memo.popitem(last=False)
        return count

    def _tracked_lately(self, record: ReceiptRecord, now: float) -> bool:
        written = self._tracked_memo.get((record.sid, record.status.value if record.status is not None else None))
        return written is not None and now - written < TRACKED_MEMO_SECONDS

    async def claim_tracked(
        self, owner: str, *, period: float, lease: float, window: float, limit: int = 100
    ) -> list[tracking.TrackedReceipt]:
        """See DeliveryLedger.claim_tracked. PostgreSQL: rows another replica is claiming are skipped (SKIP
        LOCKED); SQLite: claims run one at a time (one writer, BEGIN IMMEDIATE)."""

        def claim(conn: Connection) -> list[tracking.TrackedReceipt]:
            # The clock read in the transaction: a lease runs from when it was taken, not from when it was asked.
            now = self.clock()
            return tracking.claim(conn, owner, now=now, period=period, lease=lease, window=window, limit=limit)

        return await self._run(claim, write=True)

    async def settle_tracked(
        self,
        owner: str,
        *,
        seen: Sequence[ReceiptRecord] = (),
        service_sid: str | None = None,
        gone: Sequence[str] = (),
        released: Sequence[str] = (),
    ) -> None:
        """See DeliveryLedger.settle_tracked."""

        def settle(conn: Connection) -> None:
            if seen:
                tracking.record_states(conn, self._insert, seen, self.clock(), service_sid)
            for chunk in _chunks(list(gone)):
                tracking.forget(conn, chunk)
            for chunk in _chunks(list(released)):
                tracking.release(conn, owner, chunk)

        await self._run(settle, write=True)

    async def tracked_stats(self, *, period: float, window: float) -> tracking.TrackedStats:
        """See DeliveryLedger.tracked_stats."""
        return await self._run(lambda conn: tracking.stats(conn, now=self.clock(), period=period, window=window))

    # --- questions across conversations ---

    async def delivery_report(
        self, service_sid: str, since: datetime, until: datetime, group_by: Sequence[ReportDimension] = ()
    ) -> list[ReportRow]:
        """See DeliveryLedger.delivery_report."""
        statements = report_statements(service_sid, since, until, group_by)
        rows = await self._run(lambda conn: [row for stmt in statements for row in conn.execute(stmt).all()])
        return merge_report_rows(rows, group_by)

    async def failed_deliveries(
        self,
        service_sid: str,
        since: datetime,
        until: datetime,
        *,
        error_codes: Collection[int] | None = None,
        retryable: bool | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> FailedDeliveryPage:
        """See DeliveryLedger.failed_deliveries."""
        stmt = failed_statement(
            service_sid, since, until, error_codes=error_codes, retryable=retryable, first=first, after=after
        )
        return failed_page(await self._read(stmt), first)

    # --- retention ---

    async def prune(self, before: datetime) -> PruneResult:
        """Deletes in batches of PRUNE_BATCH rows, each its own transaction, so applies interleave."""
        cutoff = before.timestamp()
        pruned_changes = dedupe = pruned_history = 0
        while (n := await self._prune_changes(cutoff)) > 0:
            pruned_changes += n
        while (n := await self._prune_batch(seen, seen.c.key, cutoff)) > 0:
            dedupe += n
        while (n := await self._prune_batch(history, history.c.id, cutoff)) > 0:
            pruned_history += n
        hours = delete(report_hours).where(report_hours.c.hour + HOUR <= int(cutoff))  # wholly before the cutoff
        await self._run(lambda conn: conn.execute(hours), write=True)
        return PruneResult(pruned_changes, dedupe, pruned_history, await self.pruned_through())

    async def _prune_changes(self, cutoff: float) -> int:
        """One batch of the change log's oldest prefix: stops at the first change recorded at/after `cutoff`."""

        def prune(conn: Connection) -> int:
            rows = conn.execute(select(changes.c.seq, changes.c.ts).order_by(changes.c.seq).limit(PRUNE_BATCH)).all()
            last = None
            for row in rows:
                if row.ts >= cutoff:
                    break
                last = int(row.seq)
            if last is None:
                return 0
            count = conn.execute(delete(changes).where(changes.c.seq <= last)).rowcount
            conn.execute(update(meta).where(meta.c.key == "pruned_through", meta.c.value < last).values(value=last))
            return int(count)

        return await self._run(prune, write=True)

    async def _prune_batch(self, table: Table, key: Any, cutoff: float) -> int:
        oldest = select(key).where(table.c.ts < cutoff).limit(PRUNE_BATCH).scalar_subquery()
        return await self._run(
            lambda conn: int(conn.execute(delete(table).where(key.in_(oldest))).rowcount), write=True
        )

    async def pruned_through(self) -> int:
        return await self._meta("pruned_through")

    # --- for tests and benchmarks ---

    async def count_rows(self, table: Table) -> int:
        rows = await self._read(select(func.count()).select_from(table))
        return int(rows[0][0])


# Every batch writes with the same statements: built once per dialect, so SQLAlchemy neither rebuilds them (an
# upsert's `excluded` columns are a fresh alias each time) nor recomputes their cache keys, batch after batch.
_SET_META = update(meta).where(meta.c.key == bindparam("meta_key")).values(value=bindparam("meta_value"))


@dataclass(frozen=True)
class _WriteStatements:
    changes: Any
    receipts: Any
    history: Any
    report_hours: Any
    seen: Any
    horizons: Any


def _in(column: Any) -> Any:
    """`column IN (:values)`, the list bound (expanded) at execution."""
    return column.in_(bindparam("values", expanding=True))


# What `_snapshot` reads, rows locked (FOR UPDATE on PostgreSQL): built once, so a batch neither rebuilds the
# statements nor recomputes their cache keys.
_SNAPSHOT_COUNTERS = (
    select(meta.c.key, meta.c.value).where(meta.c.key.in_(("last_seq", "published_through"))).with_for_update()
)
_SNAPSHOT_SEEN = select(seen.c.key, seen.c.seq).where(_in(seen.c.key))
_SNAPSHOT_CHANGES = select(changes.c.seq, changes.c.kind, changes.c.conversation_sid, changes.c.payload).where(
    _in(changes.c.seq)
)
_SNAPSHOT_RECEIPTS = select(receipts.c.sid, receipts.c.record).where(_in(receipts.c.sid)).with_for_update()
_SNAPSHOT_HISTORY = select(history.c.receipt_sid, history.c.status).where(_in(history.c.receipt_sid))
_SNAPSHOT_HORIZONS = (
    select(horizons.c.participant_sid, horizons.c.idx, horizons.c.at)
    .where(_in(horizons.c.participant_sid))
    .with_for_update()
)


@functools.cache
def _write_statements(dialect: str) -> _WriteStatements:
    """The batch write statements for `dialect` ('sqlite' or 'postgresql')."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    receipts_upsert = dialect_insert(receipts)
    columns = [c.name for c in receipts.c if c.name != "sid"]
    receipts_upsert = receipts_upsert.on_conflict_do_update(
        index_elements=["sid"], set_={c: receipts_upsert.excluded[c] for c in columns}
    )
    hours = dialect_insert(report_hours)
    hours = hours.on_conflict_do_update(
        index_elements=["service_sid", "hour", "status", "error_code", "channel"],
        set_={"count": report_hours.c.count + hours.excluded["count"]},
    )
    marks = dialect_insert(horizons)
    marks = marks.on_conflict_do_update(
        index_elements=["participant_sid"], set_={"idx": marks.excluded.idx, "at": marks.excluded.at}
    )
    return _WriteStatements(
        changes=insert(changes),
        receipts=receipts_upsert,
        history=insert(history),
        report_hours=hours,
        seen=insert(seen),
        horizons=marks,
    )


class FileLock:
    """An exclusive advisory lock (flock) on a file: held by one open file at a time, released by the kernel if
    its process dies. Acquired by polling, never by blocking a thread, so a cancelled waiter leaves nothing held."""

    def __init__(self, path: str) -> None:
        import fcntl

        self._fcntl = fcntl
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    async def acquire(self) -> None:
        assert self._fd is not None, "FileLock used after close()"
        delay = 0.0005
        while True:
            try:
                self._fcntl.flock(self._fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
                return
            except BlockingIOError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.01)

    def release(self) -> None:
        if self._fd is not None:
            self._fcntl.flock(self._fd, self._fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sqlite_inbox_insert(conn: Connection, chunks: Sequence[Sequence[str]], now: float) -> list[int]:
    """One multi-row INSERT per chunk. Holding the write lock, SQLite numbers a statement's rows one after another
    (AUTOINCREMENT), so the last row's id gives them all."""
    ids: list[int] = []
    for chunk in chunks:
        params = tuple(value for body in chunk for value in (body, now))
        last = int(conn.exec_driver_sql(_sqlite_inbox_statement(len(chunk)), params).lastrowid)
        ids += range(last - len(chunk) + 1, last + 1)
    return ids


@functools.lru_cache(maxsize=64)
def _sqlite_inbox_statement(rows: int) -> str:
    return f"INSERT INTO {inbox.name} (body, received_at) VALUES " + ", ".join(["(?, ?)"] * rows)


_INBOX_DONE = delete(inbox).where(inbox.c.id.in_(bindparam("ids", expanding=True)))  # built once
_INBOX_DONE_ONE = delete(inbox).where(inbox.c.id == bindparam("id"))  # built once


def _delete_inbox(conn: Connection, entry_ids: Sequence[int]) -> None:
    if conn.dialect.name == "sqlite":  # one indexed DELETE per entry, compiled once, bound by `executemany`
        execute_many(conn, _INBOX_DONE_ONE, [{"id": entry_id} for entry_id in entry_ids])
        return
    for chunk in _chunks(entry_ids):
        conn.execute(_INBOX_DONE, {"ids": list(chunk)})


def _chunks(values: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(BaseException):
        await conn.invalidate()
    with contextlib.suppress(BaseException):
        await conn.close()
