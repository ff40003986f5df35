"""Key/value stores behind the resource cache, picked by URL scheme: `memory://` (aiocache, through its public
API) and `redis://` (redis.asyncio directly: aiocache's Redis backend still speaks redis-py APIs that version 8
deprecates, and cannot express SET PX in a pipeline).

Values are JSON values. Redis holds them as JSON text and every read parses it (another replica may have written
it). The in-process store holds them as read-only Python objects (kernel/frozen.py): nothing to parse on a read,
and an entry is decoded into its record once, the first time a reader asks for it with a `decode` function, then
handed as that same immutable object to every later reader until the entry is replaced, deleted or expires.

Never pickles (JSON text only: a compromised Redis must not mean code execution); never leaks a warning.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from aiocache import SimpleMemoryCache
from aiocache.serializers import NullSerializer

from delivery_gateway.kernel.frozen import freeze
from delivery_gateway.kernel.urls import REDIS_SCHEMES, RedisUrl, parse_redis_url, scheme_of

DEFAULT_OP_TIMEOUT = 1.0  # seconds per cache operation; a slow cache must not slow the gateway down

# What a decode function raises on an entry of another shape (an older version's, another kind's): a miss.
DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)

Decode = Callable[[Any], Any]


class CacheBackend(Protocol):
    """What ResourceCache needs of a store. Keys are the cache's own (the backend adds its namespace).

    With `decode`, a read returns `decode(value)` for each entry found, and None (a miss) for an entry `decode`
    refuses (DECODE_ERRORS); an in-process store may return the same decoded object to every reader, so a decoded
    value must be treated as immutable (records are frozen; their lists and dicts are read-only)."""

    async def multi_get(self, keys: Sequence[str], decode: Decode | None = None) -> list[Any | None]: ...

    async def multi_set(self, pairs: Sequence[tuple[str, Any]], ttl: float | None) -> None: ...

    async def multi_get_expiring(
        self, keys: Sequence[str], decode: Decode | None = None
    ) -> list[tuple[Any | None, float | None]]:
        """(value, seconds it still lives or None: no expiry) per key: what the response cache needs so that a
        response never outlives the entries it was built from."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> int: ...

    async def hit_window(self, key: str, window: float) -> tuple[int, float]:
        """Count one hit on `key` in its fixed window of `window` seconds (the first hit opens it), atomically:
        (hits in the current window, seconds until it closes). Raises when the store is unreachable."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def dumps(value: Any) -> str:
    """JSON text; refuses NaN and anything JSON cannot hold (a programming error, raised)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(value: str | bytes | None) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return json.loads(value)


def _decoded(value: Any, decode: Decode) -> Any | None:
    try:
        return decode(value)
    except DECODE_ERRORS:
        return None


class _Entry:
    """One in-process entry: its JSON value (read-only) and, once a reader asked, that value decoded (one decode
    function's result is kept: each kind of entry has one reader's decode)."""

    __slots__ = ("decode", "decoded", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.decode: Decode | None = None
        self.decoded: Any = None

    def read(self, decode: Decode | None) -> Any | None:
        if decode is None or self.value is None:
            return self.value
        if self.decode is not None and (self.decode is decode or self.decode == decode):
            return self.decoded
        decoded = _decoded(self.value, decode)
        if decoded is None:  # refused: the next reader decodes it again (and is refused again)
            return None
        self.decode, self.decoded = decode, freeze(decoded)
        return self.decoded


class MemoryBackend:
    """An in-process store: aiocache's SimpleMemoryCache (TTLs expire entries) through its public API, holding
    each entry as a read-only JSON value and its decoded record (module docstring)."""

    PRUNE_EVERY = 1024  # window counters: drop the expired ones once this many were opened

    def __init__(self, namespace: str) -> None:
        # No per-operation timeout: it would only wrap dict lookups in asyncio.wait_for. No serializer: entries are
        # Python objects (values checked and copied as JSON when stored, so nothing else can hold or change them).
        self._cache = SimpleMemoryCache(serializer=NullSerializer(), namespace=namespace, timeout=None)
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (hits, monotonic time the window closes)
        self._opened = 0
        self._deadlines: dict[str, float] = {}  # key -> monotonic time its entry expires (multi_get_expiring)

    async def multi_get(self, keys: Sequence[str], decode: Decode | None = None) -> list[Any | None]:
        if not keys:
            return []
        entries = await self._cache.multi_get(list(keys))
        if decode is None:
            return [None if entry is None else entry.value for entry in entries]
        # An entry already decoded by this decode function is served as is, without a call per entry.
        return [
            entry.decoded if entry is not None and entry.decode == decode else entry and entry.read(decode)
            for entry in entries
        ]

    async def multi_set(self, pairs: Sequence[tuple[str, Any]], ttl: float | None) -> None:
        if not pairs:
            return
        # The JSON round trip refuses what JSON cannot hold (as Redis does) and makes a copy the caller cannot
        # reach; freezing makes it read-only for every reader.
        entries = [(key, _Entry(freeze(loads(dumps(value))))) for key, value in pairs]
        await self._cache.multi_set(entries, ttl=ttl or None)
        now = time.monotonic()
        if len(self._deadlines) > self.PRUNE_EVERY * 64:  # forget expired deadlines now and then
            self._deadlines = {k: v for k, v in self._deadlines.items() if v > now}
        deadline = now + ttl if ttl else float("inf")
        for key, _ in pairs:
            self._deadlines[key] = deadline

    async def multi_get_expiring(
        self, keys: Sequence[str], decode: Decode | None = None
    ) -> list[tuple[Any | None, float | None]]:
        values = await self.multi_get(keys, decode)
        now = time.monotonic()
        out: list[tuple[Any | None, float | None]] = []
        for key, value in zip(keys, values, strict=True):
            deadline = self._deadlines.get(key, float("inf"))
            out.append((value, None if deadline == float("inf") else max(0.0, deadline - now)))
        return out

    async def delete_many(self, keys: Sequence[str]) -> int:
        deleted = 0
        for key in keys:
            deleted += int(await self._cache.delete(key))
        return deleted

    async def hit_window(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        hits, closes = self._windows.get(key, (0, 0.0))
        if closes <= now:
            hits, closes = 0, now + window
            self._opened += 1
            if self._opened % self.PRUNE_EVERY == 0:
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        self._windows[key] = (hits + 1, closes)
        return hits + 1, closes - now

    async def ping(self) -> None:
        return None  # memory never fails

    async def close(self) -> None:
        await self._cache.close()


def _load(text: str | bytes | None, decode: Decode | None) -> Any | None:
    """A Redis entry: its JSON, decoded when asked (a fresh object per read: nothing is shared)."""
    value = loads(text)
    if value is None or decode is None:
        return value
    return _decoded(value, decode)


class RedisBackend:
    """Redis through redis.asyncio: MGET, SET PX (one MULTI for many), DEL; every operation time-bounded."""

    def __init__(self, client: aioredis.Redis, *, namespace: str, timeout: float | None) -> None:
        self._client = client
        self._namespace = namespace
        self._timeout = timeout

    def _key(self, key: str) -> str:
        return f"{self._namespace}:{key}" if self._namespace else key

    async def multi_get(self, keys: Sequence[str], decode: Decode | None = None) -> list[Any | None]:
        if not keys:
            return []
        async with asyncio.timeout(self._timeout):
            values = await self._client.mget([self._key(key) for key in keys])
        return [_load(value, decode) for value in values]

    async def multi_get_expiring(
        self, keys: Sequence[str], decode: Decode | None = None
    ) -> list[tuple[Any | None, float | None]]:
        """MGET and every key's PTTL in one round trip."""
        if not keys:
            return []
        names = [self._key(key) for key in keys]
        async with asyncio.timeout(self._timeout):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.mget(names)
                for name in names:
                    pipe.pttl(name)
                replies = await pipe.execute()
        values, ttls = replies[0], replies[1:]
        return [
            (_load(value, decode), (ttl_ms / 1000 if ttl_ms is not None and ttl_ms >= 0 else None))
            for value, ttl_ms in zip(values, ttls, strict=True)
        ]

    async def multi_set(self, pairs: Sequence[tuple[str, Any]], ttl: float | None) -> None:
        if not pairs:
            return
        encoded = [(self._key(key), dumps(value)) for key, value in pairs]
        async with asyncio.timeout(self._timeout):
            if not ttl:
                await self._client.mset(dict(encoded))
                return
            px = max(1, int(float(ttl) * 1000))
            async with self._client.pipeline(transaction=True) as pipe:
                for key, text in encoded:
                    pipe.set(key, text, px=px)
                await pipe.execute()

    async def delete_many(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        async with asyncio.timeout(self._timeout):
            return int(await self._client.delete(*(self._key(key) for key in keys)))

    async def hit_window(self, key: str, window: float) -> tuple[int, float]:
        """SET NX PX (opens the window) + INCR + PTTL in one MULTI: every replica counts in the same window."""
        name = self._key(key)
        window_ms = max(1, int(window * 1000))
        async with asyncio.timeout(self._timeout):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, px=window_ms, nx=True)
                pipe.incr(name)
                pipe.pttl(name)
                _, hits, ttl_ms = await pipe.execute()
        return int(hits), (ttl_ms if ttl_ms and ttl_ms > 0 else window_ms) / 1000

    async def ping(self) -> None:
        async with asyncio.timeout(self._timeout):
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


def redis_client(parsed: RedisUrl, connect_timeout: float) -> aioredis.Redis:
    """The one way the caches open Redis: bytes in and out, the URL's `connect_timeout` when it names one (0
    included), `connect_timeout` otherwise."""
    timeout = parsed.connect_timeout if parsed.connect_timeout is not None else connect_timeout
    return aioredis.Redis.from_url(parsed.url, decode_responses=False, socket_connect_timeout=timeout)


def backend_from_url(url: str, *, namespace: str, timeout: float = DEFAULT_OP_TIMEOUT) -> CacheBackend:
    """`memory://` or `redis[s]://[:password@]host[:port][/db][?prefix=P&connect_timeout=S]`.

    Every key is stored as `{prefix}{namespace}:{key}` (prefix from the URL, empty by default).
    """
    scheme = scheme_of(url)
    if scheme == "memory":
        return MemoryBackend(namespace)
    if scheme in REDIS_SCHEMES:
        parsed = parse_redis_url(url)
        return RedisBackend(redis_client(parsed, timeout), namespace=(parsed.prefix or "") + namespace, timeout=timeout)
    raise ValueError(f"unsupported cache URL scheme {scheme!r}; expected memory://, redis:// or rediss://")
