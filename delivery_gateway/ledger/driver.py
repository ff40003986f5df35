"""Batch statements run straight through SQLite's driver: compiled once, every row bound by `executemany`; and
the few statements every applied batch runs (its snapshot's reads, its counters, its inbox entries' removal) the
same way, their SQL compiled once per statement (and per length of an `IN (...)` list).

Why: SQLAlchemy's per-row parameter processing, its per-statement execution context, and an expanding
`IN (...)` list compiled anew for every batch, were a sizeable share of the ledger thread's time per applied
batch; the columns these statements bind and read need no conversion (text, numbers). The same connection and
transaction either way; other dialects go through SQLAlchemy unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite

_SQLITE_NAMED = sqlite.dialect(paramstyle="named")
_SQLITE_QMARK = sqlite.dialect(paramstyle="qmark")


def _sqlite_driver(conn: Connection) -> Any:
    """The sqlite3 connection under `conn` (in its transaction), or None on any other dialect."""
    if conn.dialect.name != "sqlite":
        return None
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi


def execute_many(conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """`conn.execute(statement, rows)`; on SQLite through the driver's `executemany` with the statement compiled
    once per set of row keys (named parameters, the rows' dicts as they are)."""
    if not rows:
        return
    dbapi = _sqlite_driver(conn)
    if dbapi is None:
        conn.execute(statement, rows)
        return
    dbapi.executemany(sqlite_sql(statement, tuple(rows[0])), rows)


@functools.lru_cache(maxsize=64)
def sqlite_sql(statement: Any, keys: tuple[str, ...]) -> str:
    """`statement` as SQLite SQL for rows with these keys (`:name` parameters)."""
    return str(statement.compile(dialect=_SQLITE_NAMED, column_keys=list(keys)))


def rows_in(conn: Connection, statement: Any, values: Sequence[Any]) -> list[Any]:
    """The rows of `statement` (one expanding `IN` bound as `values`) for these values, as tuples (positional);
    on SQLite through the driver."""
    dbapi = _sqlite_driver(conn)
    if dbapi is None:
        return list(conn.execute(statement, {"values": list(values)}))
    return dbapi.execute(_sqlite_in_sql(statement, len(values)), tuple(values)).fetchall()


def rows_of(conn: Connection, statement: Any) -> list[Any]:
    """The rows of `statement`, which binds nothing of its own but literal values, as tuples; on SQLite through
    the driver."""
    dbapi = _sqlite_driver(conn)
    if dbapi is None:
        return list(conn.execute(statement))
    return dbapi.execute(_sqlite_literal_sql(statement)).fetchall()


def execute_one(conn: Connection, statement: Any, params: dict[str, Any]) -> None:
    """`conn.execute(statement, params)`; on SQLite through the driver, the SQL compiled once."""
    dbapi = _sqlite_driver(conn)
    if dbapi is None:
        conn.execute(statement, params)
        return
    dbapi.execute(sqlite_sql(statement, tuple(params)), params)


@functools.lru_cache(maxsize=1024)
def _sqlite_in_sql(statement: Any, count: int) -> str:
    compiled = statement.compile(dialect=_SQLITE_QMARK)
    return str(compiled.construct_expanded_state({"values": [None] * count}).statement)


@functools.lru_cache(maxsize=64)
def _sqlite_literal_sql(statement: Any) -> str:
    return str(statement.compile(dialect=_SQLITE_QMARK, compile_kwargs={"literal_binds": True}))
