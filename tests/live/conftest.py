"""Fixtures of the live-delivery tests: ledgers of every backend; Redis fixtures come from tests/redis_support.py.

Never touches Redis keys outside a per-test prefix, and never leaves them behind.
"""

from __future__ import annotations

import pytest

from tests.redis_support import REDIS_URL, redis_available, redis_target, redis_url  # noqa: F401


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def ledger_url(request, tmp_path):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("redis_url")
