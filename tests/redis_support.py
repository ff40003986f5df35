"""Reusable Redis test fixtures: skip without Redis (fail if DELIVERY_GATEWAY_REQUIRE_REDIS), unique prefixes.

Never touches keys outside the prefix it made up, never flushes a database, and never leaves its keys behind.

Use from a conftest.py:  `from tests.redis_support import redis_target, redis_url  # noqa: F401`
and mark tests `@pytest.mark.redis`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

REDIS_URL = os.environ.get("DELIVERY_GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_ENV = "DELIVERY_GATEWAY_REQUIRE_REDIS"


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def require_redis(url: str = REDIS_URL) -> None:
    """Skip the calling test when Redis is unreachable; fail it if $DELIVERY_GATEWAY_REQUIRE_REDIS is set."""
    if redis_available(url):
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"Redis unreachable at {url} and {REQUIRE_ENV} is set")
    pytest.skip(f"Redis unreachable at {url}")


@dataclass(frozen=True)
class RedisTarget:
    base_url: str  # redis://host:port/db, no query
    prefix: str  # e.g. "dgtest:3f2a9c1b7d0e:" - every key the test writes must start with it

    @property
    def url(self) -> str:
        """`base_url?prefix=...`: backends of this project read `prefix` from the query."""
        parts = urlsplit(self.base_url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, f"prefix={self.prefix}", ""))

    def keys(self) -> list[str]:
        with redis.Redis.from_url(self.base_url, decode_responses=True) as client:
            return sorted(client.scan_iter(match=self.prefix + "*", count=1000))


def _cleanup(target: RedisTarget) -> None:
    with redis.Redis.from_url(target.base_url) as client:
        batch = list(client.scan_iter(match=target.prefix + "*", count=1000))
        if batch:
            client.delete(*batch)


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    """A reachable Redis and a fresh key prefix, whose keys are deleted afterwards."""
    require_redis()
    target = RedisTarget(base_url=REDIS_URL.split("?", 1)[0], prefix=f"dgtest:{uuid.uuid4().hex[:12]}:")
    try:
        yield target
    finally:
        _cleanup(target)


@pytest.fixture
def redis_url(redis_target: RedisTarget) -> str:
    """`redis://127.0.0.1:6379/0?prefix=dgtest:<unique>:` (see RedisTarget.url)."""
    return redis_target.url
