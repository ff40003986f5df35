"""Fixtures of the live-delivery tests: ledgers of every backend, Redis availability, unique Redis prefixes.

Never touches Redis keys outside the per-test prefix it made up, and never leaves them behind.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

REDIS_URL = os.environ.get("DELIVERY_GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


@pytest.fixture
def redis_url():
    """A Redis URL whose ledger/pubsub keys live under a fresh prefix, deleted afterwards."""
    if not redis_available():
        if os.environ.get("DELIVERY_GATEWAY_REQUIRE_REDIS"):
            pytest.fail(f"Redis unreachable at {REDIS_URL} and DELIVERY_GATEWAY_REQUIRE_REDIS is set")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    prefix = f"dgtest:{uuid.uuid4().hex[:12]}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def ledger_url(request, tmp_path):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("redis_url")
