"""Fixtures of the ledger tests: a fresh ledger URL of every engine (in-memory SQLite, a SQLite file, PostgreSQL).

Never shares a ledger between tests: each PostgreSQL URL names a schema of its own in this run's database.
"""

from __future__ import annotations

import pytest

from tests.postgres_support import postgres_url  # noqa: F401

ENGINES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def ledger_url(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("postgres_url")
