"""Read-through helpers for DataLoader batch functions: one cache round trip, fetch the misses, store them.

Never calls upstream itself (the caller passes `fetch_missing`) and never caches failures.

Strawberry's DataLoader cache is synchronous and holds futures, so the shared cache is consulted *inside*
the batch function:

    async def load_messages(keys: list[MessageKey]) -> list[MessageRecord | BaseException]:
        return await cached_many(
            cache, keys,
            cache_key=lambda k: cache_keys.message(k.service_sid, k.conversation_sid, k.sid),
            fetch_missing=lambda missing: fetch_each(missing, lambda k: upstream.fetch_message(
                k.conversation_sid, k.sid, service_sid=k.service_sid)),
            encode=MessageRecord.to_dict, decode=MessageRecord.from_dict,
            ttl_for=lambda record: ttls.messages,
        )
    loader = DataLoader(load_fn=load_messages)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from delivery_gateway.cache.resource_cache import ResourceCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


async def cached_many(
    cache: ResourceCache,
    items: Sequence[K],
    *,
    cache_key: Callable[[K], str],
    fetch_missing: Callable[[list[K]], Awaitable[Mapping[K, V | BaseException]]],
    encode: Callable[[V], Any],
    decode: Callable[[Any], V],
    ttl_for: Callable[[V], float],
) -> list[V | BaseException]:
    """Values for `items`, in order, as a DataLoader `load_fn` must return them.

    1. one `get_many` for every item's key, `decode`d (on `memory://` each entry is decoded once and the same
    immutable value is returned to every request: never change what this returns); 2. `fetch_missing(misses)`
    (unique, in first-seen order) returns {item: value or exception}; 3. successes are stored (`encode`d, grouped
    by `ttl_for(value)`); exceptions are returned in place (DataLoader raises them to that key's caller only). An item
    `fetch_missing` leaves out gets a `LookupError`.
    """
    key_of = {item: cache_key(item) for item in items}
    results: dict[K, V | BaseException] = dict(await cached_lookup(cache, key_of, decode=decode))
    missing = [item for item in key_of if item not in results]
    if missing:
        fetched = await fetch_missing(missing)
        stored: dict[K, V] = {}
        for item in missing:
            if item not in fetched:
                results[item] = LookupError(f"{item!r} was not returned by fetch_missing")
                continue
            value = fetched[item]
            results[item] = value
            if not isinstance(value, BaseException):
                stored[item] = value
        await store_fetched(cache, stored, key_of, encode=encode, ttl_for=ttl_for)
    return [results[item] for item in items]


async def cached_lookup(cache: ResourceCache, key_of: Mapping[K, str], *, decode: Callable[[Any], V]) -> dict[K, V]:
    """{item: value} for the items whose key (`key_of[item]`) the cache holds, in one `get_many`, `decode`d (an entry
    of a stale shape is a miss: refetched). Step 1 of `cached_many`, for loaders that fetch the misses themselves."""
    found = await cache.get_many(key_of.values(), decode=decode)
    return {item: found[key] for item, key in key_of.items() if key in found}


async def store_fetched(
    cache: ResourceCache,
    fetched: Mapping[K, V],
    key_of: Mapping[K, str],
    *,
    encode: Callable[[V], Any],
    ttl_for: Callable[[V], float],
) -> None:
    """Store fetched values under their keys, grouped by `ttl_for(value)`: step 3 of `cached_many`. A TTL of 0 stores
    nothing (set_many only notes the key for the response cache), so nothing is encoded for it."""
    to_store: dict[str, tuple[Any, float]] = {}
    for item, value in fetched.items():
        ttl = ttl_for(value)
        to_store[key_of[item]] = (encode(value) if ttl > 0 else None, ttl)
    await cache.set_many_ttls(to_store)


async def read_through(
    cache: ResourceCache | None,
    items: Sequence[K],
    fetch_one: Callable[[K], Awaitable[V]],
    *,
    cache_key: Callable[[K], str],
    encode: Callable[[V], Any],
    decode: Callable[[Any], V],
    ttl_for: Callable[[V], float],
) -> list[V | BaseException]:
    """A DataLoader `load_fn` body over an upstream without a batch endpoint: `cached_many` when there is a
    cache, else one `fetch_one` per item (no cache: every load reaches upstream)."""
    if cache is None:
        fetched = await fetch_each(items, fetch_one)
        return [fetched[item] for item in items]
    return await cached_many(
        cache,
        items,
        cache_key=cache_key,
        fetch_missing=lambda missing: fetch_each(missing, fetch_one),
        encode=encode,
        decode=decode,
        ttl_for=ttl_for,
    )


async def fetch_each(items: Sequence[K], fetch_one: Callable[[K], Awaitable[V]]) -> dict[K, V | BaseException]:
    """`fetch_missing` for upstreams without a batch endpoint: one call per item, concurrently (the
    UpstreamClient's semaphore bounds them), exceptions captured per item."""
    values = await asyncio.gather(*(fetch_one(item) for item in items), return_exceptions=True)
    return dict(zip(items, values, strict=True))
