"""Read-through helpers for DataLoader batch functions: cached_many and cached message pages.

Never talks to upstream: fetchers are counting fakes.
"""

from __future__ import annotations

import time

import pytest

from delivery_gateway.cache import (
    MessagesPageRequest,
    ResourceCache,
    cached_many,
    cached_message_pages,
    fetch_each,
)
from delivery_gateway.cache import keys as k
from delivery_gateway.kernel import read_set
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.records import MessageRecord, Page
from delivery_gateway.upstream.errors import UpstreamNotFound

CONV = "CH" + "1" * 32


def msg(i: int, body: str = "hi") -> MessageRecord:
    return MessageRecord(sid=f"IM{i:032x}", conversation_sid=CONV, index=i, body=body)


@pytest.fixture
async def cache():
    c = ResourceCache.from_url("memory://", metrics=Metrics())
    yield c
    await c.close()


async def test_cached_many_fetches_only_misses_and_stores_successes(cache):
    fetched: list[list[int]] = []

    async def fetch_missing(items: list[int]):
        fetched.append(items)
        return await fetch_each(items, fetch_one)

    async def fetch_one(i: int) -> MessageRecord:
        if i == 3:
            raise UpstreamNotFound("gone", status=404)
        return msg(i)

    def load(items):
        return cached_many(
            cache,
            items,
            cache_key=lambda i: k.message(None, CONV, f"IM{i:032x}"),
            fetch_missing=fetch_missing,
            encode=MessageRecord.to_dict,
            decode=MessageRecord.from_dict,
            ttl_for=lambda m: 30,
        )

    first = await load([1, 2, 3])
    assert first[:2] == [msg(1), msg(2)] and isinstance(first[2], UpstreamNotFound)
    second = await load([2, 1, 3, 4])
    assert second[:2] == [msg(2), msg(1)] and isinstance(second[2], UpstreamNotFound) and second[3] == msg(4)
    assert fetched == [[1, 2, 3], [3, 4]]  # failures are not cached
    assert cache.metrics.sample("delivery_gateway_cache_requests_total", {"kind": "message", "result": "hit"}) == 2


async def test_cached_many_reports_items_the_fetcher_left_out(cache):
    async def fetch_missing(items):
        return {}

    out = await cached_many(
        cache,
        ["a"],
        cache_key=lambda i: k.conversation(None, i),
        fetch_missing=fetch_missing,
        encode=lambda v: v,
        decode=lambda v: v,
        ttl_for=lambda v: 1,
    )
    assert isinstance(out[0], LookupError)


async def test_cached_many_uses_per_value_ttls(cache):
    async def fetch_missing(items):
        return {i: {"final": i == "b"} for i in items}

    await cached_many(
        cache,
        ["a", "b"],
        cache_key=lambda i: k.receipts(None, CONV, i),
        fetch_missing=fetch_missing,
        encode=lambda v: v,
        decode=lambda v: v,
        ttl_for=lambda v: 3600 if v["final"] else 0,
    )
    assert await cache.get_many([k.receipts(None, CONV, "a"), k.receipts(None, CONV, "b")]) == {
        k.receipts(None, CONV, "b"): {"final": True}
    }


async def test_ttl_zero_encodes_nothing_stores_nothing_and_still_notes_the_read(cache):
    # A TTL of 0 ("do not cache": every read reaches Twilio) must cost no encoding, while a recorded execution still
    # learns what it read (and that its answer expires at once).
    encoded: list[object] = []

    def encode(value: MessageRecord) -> dict:
        encoded.append(value)
        return value.to_dict()

    async def fetch_missing(items: list[int]):
        return {i: msg(i) for i in items}

    reads, token = read_set.begin()
    try:
        out = await cached_many(
            cache,
            [1, 2],
            cache_key=lambda i: k.message(None, CONV, f"IM{i:032x}"),
            fetch_missing=fetch_missing,
            encode=encode,
            decode=MessageRecord.from_dict,
            ttl_for=lambda m: 0,
        )
        req = MessagesPageRequest(CONV, order="desc", page_size=2)

        async def fetch_page(r: MessagesPageRequest) -> Page[MessageRecord]:
            return Page(items=[msg(4), msg(3)], page_size=2)

        [page] = await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=0)
    finally:
        read_set.end(token)
    assert out == [msg(1), msg(2)] and page.items == [msg(4), msg(3)]
    assert encoded == []
    keys = [k.message(None, CONV, msg(i).sid) for i in (1, 2, 3, 4)] + [
        k.messages_page(None, CONV, "desc", 2, None, None)
    ]
    assert await cache.get_many(keys) == {}
    assert {f"m:{msg(i).sid}" for i in (1, 2, 3, 4)} | {f"c:{CONV}"} <= reads.deps
    assert reads.expires <= time.time()


async def test_message_pages_are_sids_and_messages_update_alone(cache):
    calls: list[MessagesPageRequest] = []

    async def fetch_page(r: MessagesPageRequest) -> Page[MessageRecord]:
        calls.append(r)
        return Page(items=[msg(2), msg(1)], page_size=2, next_page_token="PT1")

    req = MessagesPageRequest(CONV, order="desc", page_size=2)
    [page] = await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=30)
    assert page.items == [msg(2), msg(1)] and page.next_page_token == "PT1"
    entry_key = k.messages_page(None, CONV, "desc", 2, None, None)
    assert await cache.get(entry_key) == {
        "sids": [msg(2).sid, msg(1).sid],
        "page_size": 2,
        "next": "PT1",
        "prev": None,
    }

    # A webhook updates one message entry; the cached page reflects it without an upstream call.
    await cache.set(k.message(None, CONV, msg(1).sid), msg(1, body="edited").to_dict(), ttl=30)
    [again, same] = await cached_message_pages(cache, [req, req], fetch_page=fetch_page, ttl=30)
    assert again.items[1].body == "edited" and same == again
    assert len(calls) == 1

    # A message entry gone (invalidated): the page is refetched whole.
    await cache.delete_many(k.invalidation_keys_message(None, CONV, msg(2).sid))
    await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=30)
    assert len(calls) == 2

    # A new message: bumping the generation orphans every page of the conversation.
    await cache.bump(k.generation_keys(None, CONV))
    await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=30)
    assert len(calls) == 3
    await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=30)
    assert len(calls) == 3


async def test_message_page_failures_are_returned_not_cached(cache):
    async def fetch_page(r):
        raise UpstreamNotFound("no such conversation", status=404)

    req = MessagesPageRequest(CONV)
    [first] = await cached_message_pages(cache, [req], fetch_page=fetch_page, ttl=30)
    assert isinstance(first, UpstreamNotFound)
    assert await cache.get(k.messages_page(None, CONV, "desc", 50, None, None)) is None
