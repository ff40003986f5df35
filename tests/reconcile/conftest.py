"""Fixtures of the reconciliation tests: PostgreSQL from tests/postgres_support.py (a fresh schema per URL)."""

from __future__ import annotations

from tests.postgres_support import postgres_url  # noqa: F401
