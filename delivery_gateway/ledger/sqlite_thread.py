"""The SQLite ledger's one connection, on a thread of its own: each ledger operation runs there whole.

Why a thread of our own rather than an async driver: through aiosqlite and SQLAlchemy's async adapter every
statement costs about eight hand-offs between the event loop and the driver's thread (cursor, execute, fetch,
close), roughly half a millisecond of CPU, and a batch apply runs dozens of statements. Here an operation (a
read, a group commit, a whole batch transaction) is one hand-off, and its statements run at the driver's speed.

Never runs two operations at once (one thread, one connection: SQLite's single writer), and never runs an
operation on the event loop (a commit may wait on the disk).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from delivery_gateway.ledger.store import SQLITE_BEGIN, StoreUrl, create_sqlite_engine

T = TypeVar("T")


class SqliteThread:
    """`await run(fn, write=...)` calls `fn(connection)` on the thread: in a BEGIN IMMEDIATE transaction committed
    when `fn` returns (rolled back if it raises) with `write=True`, else in autocommit mode (each statement its
    own transaction: reads, and lone writes that need no more)."""

    def __init__(self, store: StoreUrl) -> None:
        self.engine: Engine = create_sqlite_engine(store)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")

    async def run(self, fn: Callable[[Connection], T], *, write: bool = False) -> T:
        # A cancelled caller stops waiting; the operation itself still completes (or rolls back) on the thread,
        # before the next one starts.
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn, write)

    def _call(self, fn: Callable[[Connection], T], write: bool) -> T:
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE" if write else "NONE"})
            if not write:
                return fn(conn)
            with conn.begin():
                return fn(conn)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.engine.dispose)
        self._executor.shutdown(wait=True)
