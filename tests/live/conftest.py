"""Fixtures of the live-delivery tests: Redis from tests/redis_support.py, PostgreSQL from tests/postgres_support.py.

Never touches Redis keys outside a per-test prefix, nor PostgreSQL outside this run's database.
"""

from __future__ import annotations

from tests.postgres_support import postgres_url  # noqa: F401
from tests.redis_support import REDIS_URL, redis_available, redis_target, redis_url  # noqa: F401
