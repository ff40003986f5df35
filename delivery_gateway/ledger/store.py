"""Where the ledger lives: `DELIVERY_GATEWAY_STORE_URL` parsed, and the SQLAlchemy engine it names.

Never connects while parsing, and never prints a password: `StoreUrl.display` is what logs and errors show.
`memory://` and `sqlite:///path` run on SQLite (the standard library's driver, on the ledger's own thread),
`postgresql://` on PostgreSQL (asyncpg).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from delivery_gateway.kernel.settings import REDIS_LEDGER_RETIRED

SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
CONNECT_TIMEOUT = 10.0  # seconds to get a PostgreSQL connection
COMMAND_TIMEOUT = 30.0  # seconds one PostgreSQL statement may take
SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Execution option naming how a SQLite transaction begins: IMMEDIATE for writes, NONE (autocommit) for reads.
SQLITE_BEGIN = "delivery_gateway_sqlite_begin"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL. `engine` is 'sqlite' or 'postgresql'."""

    engine: str
    url: URL  # with its driver (pysqlite, asyncpg), without our own query parameters
    display: str  # the URL as the user wrote it, password hidden
    memory: bool = False  # SQLite in memory: gone when the ledger closes
    synchronous: str = "NORMAL"  # SQLite: NORMAL survives a killed process, FULL power loss too
    schema: str | None = None  # PostgreSQL: the schema holding the tables (default: the search_path's)
    pool_size: int = 10  # PostgreSQL connections kept open

    @property
    def lock_key(self) -> int:
        """PostgreSQL advisory-lock key of this ledger (per database and schema): serialises change appends."""
        return _lock_key(f"delivery-gateway-ledger:{self.schema or ''}")

    @property
    def migration_lock_key(self) -> int:
        """PostgreSQL advisory-lock key serialising migrations of this ledger."""
        return _lock_key(f"delivery-gateway-ledger-migrations:{self.schema or ''}")


def _lock_key(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big", signed=True)


def parse_store_url(url: str) -> StoreUrl:
    """`memory://`, `sqlite:///path[?synchronous=FULL]` or `postgresql://user@host:port/db[?schema=…&pool_size=…]`.

    Raises ValueError with one line saying what is wrong (a retired `redis://` ledger included).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return StoreUrl("sqlite", make_url("sqlite+pysqlite://"), "memory://", memory=True)
    if scheme == "sqlite":
        options = parse_qs(parts.query)
        synchronous = options.get("synchronous", ["NORMAL"])[0].upper()
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite store: synchronous={synchronous!r} (expected NORMAL, FULL or EXTRA)")
        path = unquote(parts.path)
        path = path[1:] if path.startswith("/") else path  # sqlite:///relative, sqlite:////absolute
        if path in ("", ":memory:"):
            return StoreUrl("sqlite", make_url("sqlite+pysqlite://"), url, memory=True)
        return StoreUrl("sqlite", URL.create("sqlite+pysqlite", database=path), url, synchronous=synchronous)
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        parsed = make_url(url.replace(parts.scheme + "://", "postgresql://", 1))
        query: dict[str, Any] = dict(parsed.query)
        schema = _single(query.pop("schema", None))
        if schema is not None and not SCHEMA_NAME.match(schema):
            raise ValueError(f"postgresql store: schema={schema!r} is not a plain SQL identifier")
        pool_size = _single(query.pop("pool_size", None)) or "10"
        if not pool_size.isdigit() or not 1 <= int(pool_size) <= 100:
            raise ValueError(f"postgresql store: pool_size={pool_size!r} (expected 1 to 100)")
        if not parsed.database:
            raise ValueError("postgresql store: the URL names no database (postgresql://user@host:port/db)")
        driver_url = parsed.set(drivername="postgresql+asyncpg", query=query)
        display = parsed.render_as_string(hide_password=True)
        return StoreUrl("postgresql", driver_url, display, schema=schema, pool_size=int(pool_size))
    if scheme in ("redis", "rediss"):
        raise ValueError(REDIS_LEDGER_RETIRED)
    raise ValueError(
        f"unsupported store URL scheme {scheme!r} (memory://, sqlite:///path, postgresql://user@host:port/db)"
    )


def _single(value: Any) -> str | None:
    if isinstance(value, tuple):
        return value[-1] if value else None
    return value


def create_sqlite_engine(store: StoreUrl) -> Engine:
    """SQLite's engine: one connection (the single writer), used by one thread only (ledger.sqlite_thread)."""
    engine = create_sync_engine(store.url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    _sqlite_setup(engine, store)
    return engine


def create_engine(store: StoreUrl) -> AsyncEngine:
    """PostgreSQL's engine: a pool of asyncpg connections."""
    assert store.engine == "postgresql", "SQLite runs on create_sqlite_engine"
    server_settings = {"application_name": "delivery-gateway"}
    if store.schema is not None:
        server_settings["search_path"] = store.schema
    return create_async_engine(
        store.url,
        pool_size=store.pool_size,
        max_overflow=store.pool_size,
        pool_pre_ping=True,
        pool_timeout=CONNECT_TIMEOUT,
        # A server that stops answering fails calls (webhooks answer 503) instead of hanging them.
        connect_args={
            "server_settings": server_settings,
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
        },
    )


def _sqlite_setup(engine: Engine, store: StoreUrl) -> None:
    """WAL, durability, busy timeout; and transactions that really begin (SQLAlchemy's documented recipe), so
    DDL is transactional and writers take the write lock up front (BEGIN IMMEDIATE) instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # the driver never BEGINs on its own
        cursor = dbapi_connection.cursor()
        if not store.memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={store.synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        if mode != "NONE":  # NONE: single reads run in autocommit mode
            connection.exec_driver_sql(f"BEGIN {mode}")
