"""Ledger stores for the ledger benchmarks: a fresh SQLite file, or a fresh PostgreSQL database on 127.0.0.1.

Never touches a database it did not create; every store it makes is removed when the benchmark ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator

POSTGRES_SERVER = os.environ.get("DELIVERY_GATEWAY_BENCH_POSTGRES", "postgres@127.0.0.1:5432")


async def _admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{POSTGRES_SERVER}/postgres", timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_store(engine: str) -> AsyncIterator[str]:
    """The URL of an empty ledger store of `engine` ('sqlite' or 'postgresql'), deleted afterwards."""
    if engine == "sqlite":
        directory = tempfile.mkdtemp(prefix="dg-bench-")
        try:
            yield f"sqlite:///{directory}/ledger.sqlite3"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"dgbench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{POSTGRES_SERVER}/{name}"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), 30)
