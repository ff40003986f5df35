"""Batch statements run straight through SQLite's driver: compiled once, every row bound by `executemany`.

Why: SQLAlchemy's per-row parameter processing, and an expanding `IN (...)` list compiled anew for every batch,
were a sizeable share of the ledger thread's time per applied batch; the columns these statements bind need no
conversion (text, numbers). The same connection and transaction either way; other dialects go through
SQLAlchemy unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite

_SQLITE_NAMED = sqlite.dialect(paramstyle="named")


def execute_many(conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """`conn.execute(statement, rows)`; on SQLite through the driver's `executemany` with the statement compiled
    once per set of row keys (named parameters, the rows' dicts as they are)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(statement, rows)
        return
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.executemany(sqlite_sql(statement, tuple(rows[0])), rows)


@functools.lru_cache(maxsize=64)
def sqlite_sql(statement: Any, keys: tuple[str, ...]) -> str:
    """`statement` as SQLite SQL for rows with these keys (`:name` parameters)."""
    return str(statement.compile(dialect=_SQLITE_NAMED, column_keys=list(keys)))
