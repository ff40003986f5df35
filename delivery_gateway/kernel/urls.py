"""Backend URLs (`memory://`, `redis://...`, `sqlite:///...`): the scheme, and the gateway's own options of a
Redis URL (`prefix`, `connect_timeout`), read in one place for the resource cache, the ledger and pub/sub.

Pure string functions; never connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

REDIS_SCHEMES = frozenset({"redis", "rediss"})


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme


@dataclass(frozen=True)
class RedisUrl:
    """A `redis[s]://[:password@]host[:port][/db][?prefix=P&connect_timeout=S&...]` URL, split."""

    url: str  # what redis-py's `from_url` reads: the URL without the gateway's own options
    prefix: str | None  # `prefix=`: every key the backend writes starts with it (None: not given)
    connect_timeout: float | None  # `connect_timeout=` seconds (None: redis-py's default)

    def key_prefix(self, default: str) -> str:
        """The prefix (or `default`), ending in ':' — for backends that own a key space of their own."""
        prefix = self.prefix if self.prefix is not None else default
        return prefix if prefix.endswith(":") else prefix + ":"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for `redis.asyncio.Redis.from_url` beyond the URL itself."""
        return {} if self.connect_timeout is None else {"socket_connect_timeout": self.connect_timeout}


def parse_redis_url(url: str) -> RedisUrl:
    """Raises ValueError for a URL that is not redis:// or rediss://, or a `connect_timeout` that is not a number."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"not a Redis URL: scheme {parts.scheme!r}")
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", [None])[0]
    timeout = query.pop("connect_timeout", [None])[0]
    rest = urlencode([(key, value) for key, values in query.items() for value in values])
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    return RedisUrl(clean, prefix, float(timeout) if timeout is not None else None)
