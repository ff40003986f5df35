"""The SQLite ledger's one connection, on a thread of its own: each ledger operation runs there whole.

Why a thread of our own rather than an async driver: through aiosqlite and SQLAlchemy's async adapter every
statement costs about eight hand-offs between the event loop and the driver's thread (cursor, execute, fetch,
close), roughly half a millisecond of CPU, and a batch apply runs dozens of statements. Here an operation (a
read, a group commit, a whole batch transaction) is one hand-off, and its statements run at the driver's speed.

Write operations that wait for the thread together share one transaction and one commit (a group commit across
operations: the webhooks' inbox entries queued behind a batch's apply commit with it, the batch's "published"
mark with the next inbox entries), so a busy ledger commits, and wakes the event loop, fewer times. Each still
succeeds or fails alone: when one raises, nothing of the group is committed, that one fails with its error, and
each of the others runs again by itself.

Never runs two operations at once (one thread, one connection: SQLite's single writer), and never runs an
operation on the event loop (a commit may wait on the disk).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from delivery_gateway.ledger.store import SQLITE_BEGIN, StoreUrl, create_sqlite_engine

T = TypeVar("T")
Outcome = tuple[bool, Any]  # (returned, its value) or (raised, the exception)


class SqliteThread:
    """`await run(fn, write=...)` calls `fn(connection)` on the thread: in a BEGIN IMMEDIATE transaction committed
    when `fn` returns (rolled back if it raises), shared with the other write operations waiting at that moment,
    with `write=True`; else in autocommit mode (each statement its own transaction: reads)."""

    def __init__(self, store: StoreUrl) -> None:
        self.engine: Engine = create_sqlite_engine(store)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        # The engine's one connection, checked out once and kept (used on the thread only): a checkout and a
        # check-in (with its reset) per operation cost more than many of the operations' statements.
        self._conn: Connection | None = None
        # Write operations not yet taken by the thread (appended on the event loop, taken on the thread).
        self._writes: collections.deque[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = collections.deque()
        self._writing: asyncio.Future[list[Outcome]] | None = None  # the thread's current group, if any

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        # A cancelled caller stops waiting; the operation itself still completes (or rolls back) on the thread,
        # before the next one starts.
        loop = asyncio.get_running_loop()
        if not write:
            return await loop.run_in_executor(self._executor, self._call, fn, False)
        future: asyncio.Future[T] = loop.create_future()
        self._writes.append((fn, future))
        if self._writing is None:
            self._start_group(loop)
        return await future

    def _start_group(self, loop: asyncio.AbstractEventLoop) -> None:
        group: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._writing = loop.run_in_executor(self._executor, self._write_group, group)
        self._writing.add_done_callback(lambda job: self._group_done(loop, job, group))

    def _group_done(
        self,
        loop: asyncio.AbstractEventLoop,
        job: asyncio.Future[list[Outcome]],
        group: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]],
    ) -> None:
        self._writing = None
        exc = None if job.cancelled() else job.exception()
        outcomes = job.result() if exc is None and not job.cancelled() else []
        for n, (_, future) in enumerate(group):
            if future.done():
                continue
            if n < len(outcomes):
                returned, value = outcomes[n]
                if returned:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            else:  # the executor itself failed (shut down)
                future.set_exception(exc or RuntimeError("ledger thread stopped"))
        if self._writes:  # arrived while the group ran: the next group
            self._start_group(loop)

    def _write_group(self, group: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]]) -> list[Outcome]:
        """On the thread: every write operation waiting now, in one transaction; each one's outcome, in order."""
        while True:
            try:
                group.append(self._writes.popleft())
            except IndexError:
                break
        if len(group) == 1:
            return [self._outcome(group[0][0])]
        fns = [fn for fn, _ in group]
        failing: list[int] = []  # the operation that raised, if one did (not the commit)
        try:
            return [(True, value) for value in self._call_all(fns, failing)]
        except Exception as exc:
            # Nothing of the group was committed. The operation that raised fails with its error, as it would
            # have alone; every other one runs again in a transaction of its own, so that each commits or fails
            # alone (when the commit itself failed, every one of them).
            return [(False, exc) if failing and n == failing[0] else self._outcome(fn) for n, fn in enumerate(fns)]

    def _outcome(self, fn: Callable[[Connection], Any]) -> Outcome:
        try:
            return True, self._call(fn, True)
        except Exception as exc:
            return False, exc

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.engine.connect()
        return conn

    def _call_all(self, fns: list[Callable[[Connection], Any]], failing: list[int] | None = None) -> list[Any]:
        """`fns` in one transaction, in order; `failing` gets the index of the one that raised, if one did."""
        conn = self._connection()
        try:
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                values = []
                for n, fn in enumerate(fns):
                    try:
                        values.append(fn(conn))
                    except BaseException:
                        if failing is not None:
                            failing.append(n)
                        raise
                return values
        except BaseException:
            self._release()  # as a check-in after a failure would: the next operation starts on a clean connection
            raise

    def _call(self, fn: Callable[[Connection], T], write: bool) -> T:
        if write:
            return self._call_all([fn])[0]
        conn = self._connection()
        try:
            conn.execution_options(**{SQLITE_BEGIN: "NONE"})
            try:
                return fn(conn)
            finally:
                if conn.in_transaction():  # autocommit mode: ends SQLAlchemy's own bookkeeping (no SQL)
                    conn.rollback()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _dispose(self) -> None:
        self._release()
        self.engine.dispose()

    async def close(self) -> None:
        while self._writing is not None:  # a group under way settles its callers first
            await asyncio.wait([self._writing])
            await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._dispose)
        self._executor.shutdown(wait=True)
