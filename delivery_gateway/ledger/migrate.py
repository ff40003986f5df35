"""Runs the ledger's Alembic migrations on a store: at gateway start-up and by `delivery-gateway migrate`.

Never runs two migrations of one PostgreSQL database at once (replicas starting together wait on an advisory
lock), and never touches a store already at the head revision beyond reading its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from delivery_gateway.ledger.store import StoreUrl
from delivery_gateway.ledger.tables import VERSION_TABLE, metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class MigrationResult:
    before: str | None  # revision found (None: an empty store, or one the previous SQLite backend wrote)
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations (no alembic.ini), carrying `connection` to env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def configure_context(context: Any, connection: Connection) -> None:
    """The one Alembic configuration, used by env.py (and so by every way migrations run)."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
    )


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the ledger has no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def migrate_connection(connection: Connection, store: StoreUrl) -> MigrationResult:
    """Bring the store's schema to the head revision, inside the caller's transaction on `connection`."""
    if store.engine == "postgresql":
        # Released at commit: a replica starting meanwhile waits, then finds the head revision.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": store.migration_lock_key})
        if store.schema is not None:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
    before = current_revision(connection)
    if before != head_revision():
        _upgrade(connection)
    after = current_revision(connection)
    assert after is not None
    return MigrationResult(before, after)


async def migrate(engine: AsyncEngine, store: StoreUrl) -> MigrationResult:
    """Bring a PostgreSQL store's schema to the head revision, in one transaction (SQLite: the ledger's thread
    runs `migrate_connection` in a write transaction)."""
    async with engine.connect() as conn, conn.begin():
        return await conn.run_sync(migrate_connection, store)
