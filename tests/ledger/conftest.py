"""Fixtures of the ledger tests: Redis availability and per-test prefixes come from tests/redis_support.py.

Never defines Redis skip logic of its own.
"""

from tests.redis_support import redis_target, redis_url  # noqa: F401
