"""The whole-response cache: a query's final bytes by (caller scope, document, operation, coerced variables),
dropped exactly when something it read changes, on every replica.

Each entry records the dependencies its execution read (`kernel/read_set.py`: `c:<conversation SID>` for anything
of a conversation, `m:<message SID>` for a message). `invalidate(deps)` drops the entries indexed under them here,
in the store (shared by every replica on `redis://`), and publishes the same dependencies on the pub/sub channel
`response-cache`, whose every replica drops them too. An execution that started before an invalidation of one of
its dependencies never stores its answer (`begin()` / `store()` compare invalidation sequence numbers), so a
response built from data read before a change cannot land after the change was applied.

Never serves an entry past the expiry of the freshest resource it was built from (the caller passes that deadline),
never pickles (bytes in, bytes out), and never fails a request: a store error is a miss (logged, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from delivery_gateway.cache.backend import DEFAULT_OP_TIMEOUT, redis_client
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.urls import REDIS_SCHEMES, parse_redis_url, scheme_of

log = logging.getLogger("delivery_gateway.cache")

CHANNEL = "response-cache"  # the pub/sub channel invalidations travel on
_STORE_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, RedisError)


class Broker(Protocol):
    """What the response cache needs of the gateway's pub/sub (pubsub.PubSub satisfies it)."""

    async def publish(self, channel: str, message: str) -> None: ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[str]]: ...


class ResponseStore(Protocol):
    """Entries by key, indexed by dependency; `drop(deps)` removes every entry indexed under any of them."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, body: bytes, deps: Iterable[str], ttl: float) -> None: ...

    async def drop(self, deps: Sequence[str]) -> int: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    body: bytes
    deps: tuple[str, ...]
    expires: float  # time.monotonic()


class MemoryResponseStore:
    """One process's entries, least recently used first out beyond `max_entries`."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._index: dict[str, set[str]] = {}

    def get_now(self, key: str) -> bytes | None:
        """Synchronous lookup (the hit path of a `memory://` cache awaits nothing)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.body

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def put(self, key: str, body: bytes, deps: Iterable[str], ttl: float) -> None:
        self._remove(key)
        entry = _Entry(body, tuple(deps), time.monotonic() + ttl)
        self._entries[key] = entry
        for dep in entry.deps:
            self._index.setdefault(dep, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))

    async def drop(self, deps: Sequence[str]) -> int:
        dropped = 0
        for dep in deps:
            for key in self._index.pop(dep, ()):
                dropped += self._remove(key)
        return dropped

    async def clear(self) -> None:
        self._entries.clear()
        self._index.clear()

    async def close(self) -> None:
        await self.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: str) -> int:
        entry = self._entries.pop(key, None)
        if entry is None:
            return 0
        for dep in entry.deps:
            keys = self._index.get(dep)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._index[dep]
        return 1


# Drops every entry indexed under KEYS (dependency sets) and the sets themselves, atomically: an entry stored
# meanwhile is either dropped with its set or indexed in a set created after it.
_DROP_SCRIPT = """
local dropped = 0
for _, dep in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', dep)
  for i = 1, #members, 500 do
    dropped = dropped + redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
  end
  redis.call('DEL', dep)
end
return dropped
"""


class RedisResponseStore:
    """Entries shared by every replica: `{prefix}{namespace}:e:<key>` (bytes, PX ttl) and a set per dependency
    `{prefix}{namespace}:d:<dep>` naming the entries that read it (kept as long as the longest entry may live)."""

    def __init__(self, client: aioredis.Redis, *, namespace: str, timeout: float, max_ttl: float) -> None:
        self._client = client
        self._namespace = namespace
        self._timeout = timeout
        self._index_ttl_ms = max(1000, int(max_ttl * 1000) + 1000)
        self._drop = client.register_script(_DROP_SCRIPT)

    def _entry(self, key: str) -> str:
        return f"{self._namespace}:e:{key}"

    def _dep(self, dep: str) -> str:
        return f"{self._namespace}:d:{dep}"

    async def get(self, key: str) -> bytes | None:
        async with asyncio.timeout(self._timeout):
            value = await self._client.get(self._entry(key))
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, body: bytes, deps: Iterable[str], ttl: float) -> None:
        name = self._entry(key)
        async with asyncio.timeout(self._timeout):
            async with self._client.pipeline(transaction=True) as pipe:
                for dep in deps:  # indexed first: a drop running meanwhile sees the entry's name
                    pipe.sadd(self._dep(dep), name)
                    pipe.pexpire(self._dep(dep), self._index_ttl_ms)
                pipe.set(name, body, px=max(1, int(ttl * 1000)))
                await pipe.execute()

    async def drop(self, deps: Sequence[str]) -> int:
        if not deps:
            return 0
        async with asyncio.timeout(self._timeout):
            return int(await self._drop(keys=[self._dep(dep) for dep in deps]))

    async def clear(self) -> None:
        """Nothing to do: every replica shares the entries, and invalidations reach them in the store."""

    async def close(self) -> None:
        await self._client.aclose()


def store_from_url(url: str, *, namespace: str, max_entries: int, max_ttl: float) -> ResponseStore:
    """`memory://` (per process) or `redis[s]://…[?prefix=P]` (shared), like the resource cache's URL."""
    scheme = scheme_of(url)
    if scheme == "memory":
        return MemoryResponseStore(max_entries)
    if scheme in REDIS_SCHEMES:
        parsed = parse_redis_url(url)
        return RedisResponseStore(
            redis_client(parsed, DEFAULT_OP_TIMEOUT),
            namespace=(parsed.prefix or "") + namespace,
            timeout=DEFAULT_OP_TIMEOUT,
            max_ttl=max_ttl,
        )
    raise ValueError(f"unsupported response cache URL scheme {scheme!r}; expected memory://, redis:// or rediss://")


class ResponseCache:
    """Final response bytes by key, with precise, cross-replica invalidation (see the module docstring)."""

    FORGET_AFTER = 100_000  # dependencies whose last invalidation is remembered (then a floor replaces them)

    def __init__(self, store: ResponseStore, *, max_ttl: float, metrics: Metrics | None = None) -> None:
        self.store = store
        self.max_ttl = max_ttl
        self.metrics = metrics if metrics is not None else Metrics()
        self.origin = secrets.token_hex(6)  # this process: its own invalidations come back over pub/sub
        self._seq = 0  # invalidations seen by this process
        self._floor = 0  # executions that began before this sequence number never store
        self._last: dict[str, int] = {}  # dependency -> sequence number of its last invalidation
        self._broker: Broker | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._memory = store if isinstance(store, MemoryResponseStore) else None

    @classmethod
    def from_url(
        cls, url: str, *, max_ttl: float, max_entries: int = 10_000, metrics: Metrics | None = None
    ) -> ResponseCache:
        store = store_from_url(url, namespace="dg:responses", max_entries=max_entries, max_ttl=max_ttl)
        return cls(store, max_ttl=max_ttl, metrics=metrics)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, broker: Broker) -> None:
        """Listen for other replicas' invalidations (returns once listening: nothing published later is missed)."""
        self._broker = broker
        if self._listener is None:
            self._listening.clear()
            self._listener = asyncio.create_task(self._listen(broker), name="response-cache-invalidations")
            waiter = asyncio.ensure_future(self._listening.wait())
            done, _ = await asyncio.wait({waiter, self._listener}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                self._listener.result()  # raises why listening failed

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self.store.close()

    # -- reads ----------------------------------------------------------------------------------------

    def get_now(self, key: str) -> bytes | None:
        """The hit path of a `memory://` cache, without awaiting; None on a `redis://` cache (use `get`)."""
        return self._memory.get_now(key) if self._memory is not None else None

    @property
    def synchronous(self) -> bool:
        return self._memory is not None

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except _STORE_ERRORS as exc:
            log.warning("response cache read failed: %r", exc)
            self.metrics.response_cache_requests.labels("error").inc()
            return None

    # -- writes ---------------------------------------------------------------------------------------

    def begin(self) -> int:
        """Call before executing: the snapshot `put` compares with the invalidations seen since."""
        return self._seq

    def storable(self, began: int, deps: Iterable[str]) -> bool:
        """Whether an execution that began at `began` read nothing invalidated since."""
        if began < self._floor:
            return False
        last = self._last
        return all(last.get(dep, -1) < began for dep in deps)

    async def put(self, key: str, body: bytes, deps: Iterable[str], *, began: int, expires: float) -> bool:
        """Store `body` until `expires` (wall clock; capped by the cache's TTL) unless one of `deps` was invalidated
        after `began`. Returns whether it was stored."""
        deps = tuple(deps)
        ttl = min(self.max_ttl, expires - time.time())
        if ttl <= 0 or not self.storable(began, deps):
            return False
        try:
            await self.store.put(key, body, deps, ttl)
        except _STORE_ERRORS as exc:
            log.warning("response cache write failed: %r", exc)
            return False
        if not self.storable(began, deps):  # invalidated while the write was in flight
            await self._drop(deps)
            return False
        return True

    # -- invalidation ---------------------------------------------------------------------------------

    async def invalidate(self, deps: Iterable[str], *, reason: str) -> int:
        """Drop every entry that read one of `deps`, here and on every replica. Returns how many were dropped here.

        The one door for webhooks, reconciliation and mutations alike (`reason` labels the metric)."""
        deps = sorted(set(deps))
        if not deps:
            return 0
        self._mark(deps)
        dropped = await self._drop(deps)
        self.metrics.response_cache_invalidations.labels(reason).inc(len(deps))
        if self._broker is not None:
            message = json.dumps({"origin": self.origin, "deps": deps}, separators=(",", ":"))
            try:
                await self._broker.publish(CHANNEL, message)
            except Exception:  # the other replicas' entries still expire by TTL; say so
                log.warning("publishing a response cache invalidation failed", exc_info=True)
        return dropped

    def _mark(self, deps: Sequence[str]) -> None:
        self._seq += 1
        if len(self._last) + len(deps) > self.FORGET_AFTER:
            self._last.clear()
            self._floor = self._seq  # forgotten: every execution in flight refrains from storing
        for dep in deps:
            self._last[dep] = self._seq

    async def _drop(self, deps: Sequence[str]) -> int:
        try:
            dropped = await self.store.drop(deps)
        except _STORE_ERRORS as exc:
            log.warning("response cache invalidation failed: %r", exc)
            return 0
        if dropped:
            self.metrics.response_cache_dropped.inc(dropped)
        return dropped

    async def _forget_everything(self) -> None:
        """The broker may have lost invalidations: nothing this process holds is known to be fresh."""
        self._seq += 1
        self._last.clear()
        self._floor = self._seq
        await self.store.clear()

    async def _listen(self, broker: Broker) -> None:
        while True:
            try:
                async with broker.subscribe(CHANNEL) as messages:
                    self._listening.set()
                    async for text in messages:
                        await self._received(text)
            except asyncio.CancelledError:
                raise
            except Exception:  # overflowed or failed: whatever was missed is unknown, start afresh
                log.warning("response cache invalidations interrupted; dropping this replica's entries", exc_info=True)
            await self._forget_everything()
            await asyncio.sleep(0.1)

    async def _received(self, text: str) -> None:
        try:
            message = json.loads(text)
            origin, deps = message["origin"], [str(dep) for dep in message["deps"]]
        except (ValueError, KeyError, TypeError):  # a gap marker (pubsub.GAP) or a foreign message
            await self._forget_everything()
            return
        self._mark(deps)
        if origin != self.origin:
            await self._drop(deps)
            self.metrics.response_cache_invalidations.labels("replica").inc(len(deps))
