"""The one module that touches aiocache: key/value backends picked by URL scheme (memory://, redis://).

Never pickles (JSON text only: a compromised Redis must not mean code execution); never leaks a warning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from aiocache import SimpleMemoryCache
from aiocache.backends.redis import RedisCache
from aiocache.serializers import BaseSerializer

DEFAULT_OP_TIMEOUT = 1.0  # seconds per cache operation; a slow cache must not slow the gateway down


class CacheBackend(Protocol):
    """What ResourceCache needs of a store. Keys are full strings (namespace included by the backend)."""

    async def multi_get(self, keys: Sequence[str]) -> list[Any | None]: ...

    async def multi_set(self, pairs: Sequence[tuple[str, Any]], ttl: float | None) -> None: ...

    async def delete_many(self, keys: Sequence[str]) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class JsonText(BaseSerializer):
    """JSON in, JSON text out. Unlike aiocache's JsonSerializer it accepts bytes and refuses NaN."""

    DEFAULT_ENCODING = "utf-8"

    def dumps(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    def loads(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return json.loads(value)


class _Redis8Cache(RedisCache):
    """aiocache's RedisCache minus the redis-py 8 deprecations (SETEX -> SET PX, close -> aclose).

    aiocache 0.12.3 is the last release and its master drops the API used here, hence this one adapter.
    """

    async def _set(self, key, value, ttl=None, _cas_token=None, _conn=None):  # type: ignore[override]
        if _cas_token is not None:
            return await self._cas(key, value, _cas_token, ttl=ttl, _conn=_conn)
        if not ttl:
            return await self.client.set(key, value)
        return await self.client.set(key, value, px=max(1, int(float(ttl) * 1000)))

    async def _multi_set(self, pairs, ttl=None, _conn=None):  # type: ignore[override]
        if not ttl:
            return await super()._multi_set(pairs, ttl=None, _conn=_conn)
        px = max(1, int(float(ttl) * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            for key, value in pairs:
                pipe.set(key, value, px=px)
            await pipe.execute()
        return True

    async def _close(self, *args, _conn=None, **kwargs):  # type: ignore[override]
        await self.client.aclose()


class AiocacheBackend:
    """A `CacheBackend` over an aiocache cache (memory or our Redis subclass)."""

    def __init__(self, cache: Any, *, is_redis: bool) -> None:
        self._cache = cache
        self._is_redis = is_redis

    @property
    def namespace(self) -> str | None:
        return self._cache.namespace

    async def multi_get(self, keys: Sequence[str]) -> list[Any | None]:
        if not keys:
            return []
        return await self._cache.multi_get(list(keys))

    async def multi_set(self, pairs: Sequence[tuple[str, Any]], ttl: float | None) -> None:
        if pairs:
            await self._cache.multi_set(list(pairs), ttl=ttl or None)

    async def delete_many(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        if self._is_redis:  # one DEL for all keys
            full = [self._cache.build_key(key) for key in keys]
            return int(await self._cache.client.delete(*full))
        deleted = 0
        for key in keys:
            deleted += int(await self._cache.delete(key))
        return deleted

    async def ping(self) -> None:
        """Raises when the backend cannot be reached (memory never fails)."""
        if self._is_redis:
            await self._cache.client.ping()

    async def close(self) -> None:
        await self._cache.close()


def backend_from_url(url: str, *, namespace: str, timeout: float = DEFAULT_OP_TIMEOUT) -> AiocacheBackend:
    """`memory://` or `redis[s]://[:password@]host[:port][/db][?prefix=P&connect_timeout=S]`.

    Every key is stored as `{prefix}{namespace}:{key}` (prefix from the URL, empty by default).
    """
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    namespace = options.get("prefix", "") + namespace
    if parts.scheme == "memory":
        # No per-operation timeout: it would only wrap dict lookups in asyncio.wait_for.
        cache = SimpleMemoryCache(serializer=JsonText(), namespace=namespace, timeout=None)
        return AiocacheBackend(cache, is_redis=False)
    if parts.scheme in ("redis", "rediss"):
        db = (parts.path or "/").lstrip("/").split("/")[0] or "0"
        cache = _Redis8Cache(
            serializer=JsonText(),
            namespace=namespace,
            timeout=timeout,
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(db),
            password=parts.password,
            ssl=parts.scheme == "rediss",
            create_connection_timeout=float(options.get("connect_timeout", timeout)),
        )
        return AiocacheBackend(cache, is_redis=True)
    raise ValueError(f"unsupported cache URL scheme {parts.scheme!r}; expected memory://, redis:// or rediss://")
