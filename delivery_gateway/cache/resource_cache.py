"""`ResourceCache`: JSON values by key (cache/keys.py) in front of upstream, with hit/miss metrics per kind.

Never raises because the cache is down or slow: failures read as misses and writes are dropped (logged and
counted as result="error"), so the gateway degrades to calling upstream instead of failing.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from delivery_gateway.cache import keys as cache_keys
from delivery_gateway.cache.backend import DEFAULT_OP_TIMEOUT, CacheBackend, Decode, backend_from_url
from delivery_gateway.cache.ttl import GENERATION_TTL
from delivery_gateway.kernel import read_set
from delivery_gateway.kernel.metrics import Children, Metrics
from delivery_gateway.kernel.request_stats import note_cache

_logger = logging.getLogger("delivery_gateway.cache")

# What a cache outage looks like (redis-py's errors subclass RedisError; sockets raise OSError). A value
# that is not JSON-serialisable is a programming error and is raised, not swallowed.
_BACKEND_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
try:  # redis is a dependency, but keep the memory backend usable without it
    from redis.exceptions import RedisError

    _BACKEND_ERRORS = (*_BACKEND_ERRORS, RedisError)
except ImportError:  # pragma: no cover
    pass


_READ_ERRORS: tuple[type[BaseException], ...] = (*_BACKEND_ERRORS, ValueError)  # ValueError: an entry not JSON


class ResourceCache:
    """Async cache of JSON-serialisable values (store `record.to_dict()`, never records or SDK objects).

    `get_many` is one round trip (MGET on Redis). A TTL <= 0 means "do not store". Values read back are
    read-only (kernel/frozen.py) on `memory://`; `get_many(keys, decode=...)` returns them decoded (records),
    and on `memory://` decodes each entry once for all its readers (cache/backend.py). See `cache/loaders.py`
    for the DataLoader helper.
    """

    def __init__(self, backend: CacheBackend, *, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics if metrics is not None else Metrics()
        # Services this process stored participants lists under (an Access Token caller's lists are keyed by its
        # token's service): participant webhooks name no service, so their evictions cover these scopes too.
        self.participant_scopes: set[str] = set()
        self._requests = Children(self.metrics.cache_requests)  # (kind, result)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        metrics: Metrics | None = None,
        namespace: str = "dg",
        timeout: float = DEFAULT_OP_TIMEOUT,
    ) -> ResourceCache:
        return cls(backend_from_url(url, namespace=namespace, timeout=timeout), metrics=metrics)

    # -- reads -----------------------------------------------------------------------------------------

    async def get_many(self, keys: Iterable[str], decode: Decode | None = None) -> dict[str, Any]:
        """{key: value} for the keys present (misses are absent). Duplicates are looked up once.

        With `decode` (e.g. `MessageRecord.from_dict`), each value found is `decode(value)`, and an entry `decode`
        refuses (an older shape) is a miss. A decoded value may be shared with other readers: never change it."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        reads = read_set.current()
        try:
            if reads is None:
                values = await self.backend.multi_get(unique, decode)
            else:  # a response cache records this execution: note what it reads and how long that lives
                expiring = await self.backend.multi_get_expiring(unique, decode)
                values = [value for value, _ in expiring]
                for key, (value, remaining) in zip(unique, expiring, strict=True):
                    conversation_sid, message_sid = cache_keys.sids_of(key)
                    # A miss is noted when the fetched value is stored (set_many), with the TTL it gets.
                    reads.note(conversation_sid, message_sid, remaining if value is not None else None)
        except _READ_ERRORS as exc:
            _logger.warning("cache multi_get of %d keys failed: %r", len(unique), exc)
            self._count(unique, "error")
            if reads is not None:
                reads.unattributed = True  # what is read next is not known to be fresh: answer uncached
            return {}
        found = {key: value for key, value in zip(unique, values, strict=True) if value is not None}
        note_cache(len(found), len(unique) - len(found))
        self._count(found, "hit")
        self._count([key for key in unique if key not in found], "miss")
        return found

    async def get(self, key: str) -> Any | None:
        return (await self.get_many([key])).get(key)

    # -- writes ----------------------------------------------------------------------------------------

    async def set_many(self, items: Mapping[str, Any], ttl: float) -> None:
        """Store every item with one TTL (seconds). Values must be JSON-serialisable."""
        reads = read_set.current()
        if reads is not None:  # fetched for a recorded execution: it lives `ttl` (0: not stored, not cacheable)
            for key in items:
                conversation_sid, message_sid = cache_keys.sids_of(key)
                reads.note(conversation_sid, message_sid, max(ttl, 0.0))
        if not items or ttl <= 0:
            return
        for key in items:
            if cache_keys.kind_of(key) == cache_keys.PARTICIPANTS and (service := cache_keys.service_of(key)):
                self.participant_scopes.add(service)
        try:
            await self.backend.multi_set(list(items.items()), ttl)
        except _BACKEND_ERRORS as exc:
            _logger.warning("cache multi_set of %d keys failed: %r", len(items), exc)

    async def set_many_ttls(self, items: Mapping[str, tuple[Any, float]]) -> None:
        """Store items with their own TTLs: {key: (value, ttl)}; one backend call per distinct TTL."""
        by_ttl: dict[float, dict[str, Any]] = defaultdict(dict)
        for key, (value, ttl) in items.items():
            by_ttl[ttl][key] = value
        for ttl, group in by_ttl.items():
            await self.set_many(group, ttl)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self.set_many({key: value}, ttl)

    async def delete_many(self, keys: Iterable[str]) -> int:
        unique = list(dict.fromkeys(keys))
        try:
            return await self.backend.delete_many(unique)
        except _BACKEND_ERRORS as exc:
            _logger.warning("cache delete of %d keys failed: %r", len(unique), exc)
            return 0

    async def delete(self, key: str) -> int:
        return await self.delete_many([key])

    async def bump(self, keys: Sequence[str]) -> None:
        """Write a fresh generation token to each key (see `keys.messages_generation`)."""
        await self.set_many({key: secrets.token_hex(4) for key in keys}, GENERATION_TTL)

    async def ping(self) -> None:
        """For readiness probes: raises when the backend is unreachable (reads then degrade to misses)."""
        await self.backend.ping()

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> ResourceCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- metrics ---------------------------------------------------------------------------------------

    def _count(self, keys: Iterable[str], result: str) -> None:
        per_kind: dict[str, int] = defaultdict(int)
        for key in keys:
            per_kind[key.partition(":")[0]] += 1  # cache_keys.kind_of, without a call per key
        for kind, n in per_kind.items():
            self._requests(kind, result).inc(n)
