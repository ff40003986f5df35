"""Reusable PostgreSQL test fixtures: skip without a server (fail if DELIVERY_GATEWAY_REQUIRE_POSTGRES), one
database per test run (unique name, dropped when the run ends), one fresh schema per ledger.

Never touches a database it did not create, never drops anything but its own database.

Use from a conftest.py:  `from tests.postgres_support import postgres_url  # noqa: F401`
and mark tests `@pytest.mark.postgres`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

SERVER = os.environ.get("DELIVERY_GATEWAY_TEST_POSTGRES", "postgres@127.0.0.1:5432")
REQUIRE_ENV = "DELIVERY_GATEWAY_REQUIRE_POSTGRES"


def _run(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, whether or not an event loop is running here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _execute(database: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{SERVER}/{database}", timeout=2)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


_reachable = False  # remembered once seen: a run asks for many URLs


def postgres_available() -> bool:
    global _reachable
    if not _reachable:
        try:
            _run(_execute("postgres", "SELECT 1"))
            _reachable = True
        except Exception:
            return False
    return True


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable; fail it if $DELIVERY_GATEWAY_REQUIRE_POSTGRES is set."""
    if postgres_available():
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"PostgreSQL unreachable at {SERVER} and {REQUIRE_ENV} is set")
    pytest.skip(f"PostgreSQL unreachable at {SERVER}")


class _RunDatabase:
    """This test run's database: created on first use, dropped when the interpreter exits."""

    def __init__(self) -> None:
        self.name: str | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            if self.name is None:
                name = f"dgtest_{os.getpid()}_{uuid.uuid4().hex[:10]}"
                _run(_execute("postgres", f'CREATE DATABASE "{name}"'))
                self.name = name
                atexit.register(self.drop)
            return self.name

    def drop(self) -> None:
        if self.name is not None:
            name, self.name = self.name, None
            try:  # at exit no loop runs here, and no new thread may start
                asyncio.run(_execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:  # the server went away: nothing left to clean
                import sys

                print(f"could not drop test database {name}: {exc!r}", file=sys.stderr)


RUN_DATABASE = _RunDatabase()


def run_database_url() -> str:
    """`postgresql://…/dgtest_…`: this run's database (its default schema)."""
    require_postgres()
    return f"postgresql://{SERVER}/{RUN_DATABASE.get()}"


def fresh_postgres_url() -> str:
    """A ledger URL of its own: this run's database, a schema no other ledger of the run uses."""
    return f"{run_database_url()}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url() -> str:
    """`postgresql://postgres@127.0.0.1:5432/dgtest_<run>?schema=t_<unique>` (see fresh_postgres_url)."""
    return fresh_postgres_url()


# --- the live suite on PostgreSQL -------------------------------------------------------------------------------

STORE_ENV = "DELIVERY_GATEWAY_STORE_URL"


class _OwnSchemas:
    """Schemas this run created in a database it was given (DELIVERY_GATEWAY_STORE_URL): dropped when it exits."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []  # (connection URL without query, schema)
        self._lock = threading.Lock()

    def fresh(self, url: str) -> str:
        """`url` with a `schema` of its own (replacing any it named), remembered for dropping."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with self._lock:
            if not self.created:
                atexit.register(self.drop)
            self.created.append((urlunsplit(parts._replace(query="")), schema))
        return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))

    def drop(self) -> None:
        import asyncpg

        async def drop_all() -> None:
            for base, schema in self.created:
                try:
                    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1), timeout=2)
                    try:
                        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    finally:
                        await conn.close()
                except Exception as exc:  # the server went away: nothing left to clean
                    import sys

                    print(f"could not drop test schema {schema}: {exc!r}", file=sys.stderr)

        asyncio.run(drop_all())


OWN_SCHEMAS = _OwnSchemas()
_live_urls: dict[str, str] = {}


def live_store_url(tmp_path: Any, default: str | None = None) -> str:
    """The ledger of one live test (the same URL for every call with its `tmp_path`): `default` (a SQLite file
    when None), unless the run asks for PostgreSQL with DELIVERY_GATEWAY_STORE_URL=postgresql://…: then that
    database, in a schema of the test's own, dropped when the run ends.

    `DELIVERY_GATEWAY_STORE_URL=postgresql://postgres@127.0.0.1:5432/db pytest tests/live` runs the whole live
    suite on PostgreSQL wherever a test would otherwise use the embedded engine.
    """
    key = str(tmp_path)
    if key not in _live_urls:
        chosen = os.environ.get(STORE_ENV, "")
        if urlsplit(chosen).scheme.startswith("postgresql"):
            _live_urls[key] = OWN_SCHEMAS.fresh(chosen)
        else:
            _live_urls[key] = default or f"sqlite:///{tmp_path}/ledger.sqlite3"
    return _live_urls[key]
