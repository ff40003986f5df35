"""ResourceCache on memory:// and redis://: multi get/set/delete, TTLs, JSON round trips, metrics, warnings.

Never touches Redis keys outside its per-test prefix (tests/redis_support.py).
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime

import pytest
import redis

from delivery_gateway.cache import ResourceCache
from delivery_gateway.cache import keys as k
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord, ReceiptRecord

CONV = "CH" + "1" * 32
MSG = "IM" + "2" * 32
SERVICE = "IS" + "3" * 32


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache_url(request) -> str:
    if request.param == "memory":
        return "memory://"
    return request.getfixturevalue("redis_url")


@pytest.fixture
async def cache(cache_url):
    c = ResourceCache.from_url(cache_url, metrics=Metrics(), namespace="dg")
    yield c
    await c.close()


def hits(cache: ResourceCache, kind: str, result: str) -> float:
    return cache.metrics.sample("delivery_gateway_cache_requests_total", {"kind": kind, "result": result})


async def test_multi_set_get_delete(cache):
    a, b, c = k.conversation(None, CONV), k.message(SERVICE, CONV, MSG), k.participants(None, CONV)
    await cache.set_many({a: {"sid": CONV}, b: {"sid": MSG}}, ttl=30)
    assert await cache.get_many([a, b, c, a]) == {a: {"sid": CONV}, b: {"sid": MSG}}
    assert await cache.delete_many([a, c]) == 1
    assert await cache.get_many([a, b]) == {b: {"sid": MSG}}
    await cache.set(c, [], ttl=30)  # an empty list is a value, not a miss
    assert await cache.get(c) == []
    assert await cache.delete(b) == 1
    assert await cache.get(b) is None
    assert await cache.get_many([]) == {}


async def test_ttl_expiry(cache):
    key = k.receipts(None, CONV, MSG)
    await cache.set(key, [{"sid": "DY1"}], ttl=0.2)
    assert await cache.get(key) == [{"sid": "DY1"}]
    await asyncio.sleep(0.35)
    assert await cache.get(key) is None


async def test_zero_ttl_means_do_not_store(cache):
    key = k.conversation(None, CONV)
    await cache.set(key, {"sid": CONV}, ttl=0)
    assert await cache.get(key) is None


async def test_records_round_trip_as_json(cache):
    message = MessageRecord(
        sid=MSG,
        conversation_sid=CONV,
        index=4,
        chat_service_sid=SERVICE,
        body="hi",
        media=[{"sid": "ME1", "content_type": "image/png"}],
        delivery={"total": 2, "read": "some"},
        date_created=datetime(2026, 11, 23, 4, 0, tzinfo=UTC),
    )
    receipt = ReceiptRecord(sid="DY1", conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.READ)
    await cache.set_many(
        {
            k.message(SERVICE, CONV, MSG): message.to_dict(),
            k.receipts(SERVICE, CONV, MSG): [receipt.to_dict()],
        },
        ttl=30,
    )
    got = await cache.get_many([k.message(SERVICE, CONV, MSG), k.receipts(SERVICE, CONV, MSG)])
    assert MessageRecord.from_dict(got[k.message(SERVICE, CONV, MSG)]) == message
    assert [ReceiptRecord.from_dict(r) for r in got[k.receipts(SERVICE, CONV, MSG)]] == [receipt]


async def test_hits_and_misses_are_counted_per_kind(cache):
    conv, msg = k.conversation(None, CONV), k.message(None, CONV, MSG)
    await cache.set(conv, {"sid": CONV}, ttl=30)
    await cache.get_many([conv, msg, k.message(None, CONV, "IM" + "9" * 32)])
    assert hits(cache, "conversation", "hit") == 1
    assert hits(cache, "message", "miss") == 2
    assert hits(cache, "message", "hit") == 0


async def test_values_must_be_json(cache):
    with pytest.raises(TypeError):
        await cache.set(k.conversation(None, CONV), {"when": datetime.now(UTC)}, ttl=30)


@pytest.mark.redis
async def test_redis_stores_json_text_under_prefix_and_namespace(redis_target):
    cache = ResourceCache.from_url(redis_target.url, namespace="dg")
    try:
        await cache.set(k.conversation(SERVICE, CONV), {"sid": CONV}, ttl=30)
        full = f"{redis_target.prefix}dg:conversation:{SERVICE}:{CONV}"
        assert redis_target.keys() == [full]
        with redis.Redis.from_url(redis_target.base_url) as client:
            assert client.get(full) == b'{"sid":"' + CONV.encode() + b'"}'  # JSON text, never pickle
            assert 0 < client.pttl(full) <= 30_000
    finally:
        await cache.close()


@pytest.mark.redis
async def test_redis_backend_emits_no_warnings(redis_target):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = ResourceCache.from_url(redis_target.url, namespace="dg")
        await cache.set(k.conversation(None, CONV), {"a": 1}, ttl=5)  # single SET with TTL (SETEX is deprecated)
        await cache.set_many({k.message(None, CONV, MSG): {"b": 2}}, ttl=5)
        await cache.set_many({k.message(None, CONV, "IM" + "4" * 32): {"b": 2}}, ttl=5.5)
        await cache.get_many([k.conversation(None, CONV)])
        await cache.delete_many([k.conversation(None, CONV)])
        await cache.close()  # aclose(), not the deprecated close()
    assert [str(w.message) for w in caught] == []


async def test_unreachable_cache_degrades_to_misses():
    cache = ResourceCache.from_url("redis://127.0.0.1:1/0", metrics=Metrics(), timeout=0.5)
    key = k.conversation(None, CONV)
    await cache.set(key, {"sid": CONV}, ttl=30)  # dropped, logged
    assert await cache.get_many([key]) == {}
    assert hits(cache, "conversation", "error") == 1
    assert await cache.delete(key) == 0
    await cache.close()


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="scheme"):
        ResourceCache.from_url("memcached://127.0.0.1")


def receipts_of(items: list) -> list[ReceiptRecord]:
    """A reader's decode of a receipts entry (a module-level function: the same decode for every read)."""
    return [ReceiptRecord.from_dict(r) for r in items]


async def test_decoded_reads_are_records_and_an_older_shape_is_a_miss(cache):
    receipt = ReceiptRecord(sid="DY1", conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.READ)
    good, stale = k.receipts(None, CONV, MSG), k.receipts(None, CONV, "IM" + "5" * 32)
    await cache.set_many({good: [receipt.to_dict()], stale: [{"no": "sid"}]}, ttl=30)
    got = await cache.get_many([good, stale], decode=receipts_of)
    assert got == {good: [receipt]}  # the entry `decode` refuses reads as a miss (the loader refetches it)
    assert hits(cache, "receipts", "hit") == 1 and hits(cache, "receipts", "miss") == 1


async def test_memory_entries_are_decoded_once_and_shared_read_only():
    """On memory:// every reader gets the same immutable objects until the entry is replaced; what the writer keeps,
    and anything a reader tries, cannot change what the next reader sees."""
    cache = ResourceCache.from_url("memory://", metrics=Metrics())
    key = k.receipts(None, CONV, MSG)
    message_key = k.message(None, CONV, MSG)
    written = [ReceiptRecord(sid="DY1", conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.SENT).to_dict()]
    message = {"sid": MSG, "conversation_sid": CONV, "index": 1, "delivery": {"total": 1, "sent": "all"}}
    await cache.set_many({key: written, message_key: message}, ttl=30)
    written[0]["status"] = "failed"  # the writer's own copy, changed after the write
    message["delivery"]["total"] = 7

    first = (await cache.get_many([key], decode=receipts_of))[key]
    second = (await cache.get_many([key], decode=receipts_of))[key]
    assert first is second and first[0].status is DeliveryStatus.SENT  # decoded once, the write as it was
    with pytest.raises(TypeError):
        first.append(first[0])
    with pytest.raises(TypeError):
        first[0] = first[0]
    record = (await cache.get_many([message_key], decode=MessageRecord.from_dict))[message_key]
    assert record.delivery == {"total": 1, "sent": "all"}
    with pytest.raises(TypeError):
        record.delivery["total"] = 9  # type: ignore[index]
    raw = await cache.get(message_key)  # JSON readers (webhook invalidation) get the same read-only value
    with pytest.raises(TypeError):
        raw["delivery"].update(total=9)
    assert {**raw, "index": 2}["index"] == 2 and raw["index"] == 1  # a copy is an ordinary dict
    # Replaced: the next reader decodes the new entry (a new object); nothing of the old one is served.
    await cache.set_many({key: [{**written[0], "status": "delivered"}]}, ttl=30)
    third = (await cache.get_many([key], decode=receipts_of))[key]
    assert third is not first and third[0].status is DeliveryStatus.DELIVERED
    await cache.close()


@pytest.mark.redis
async def test_redis_decodes_each_read_afresh(redis_target):
    cache = ResourceCache.from_url(redis_target.url, namespace="dg")
    try:
        receipt = ReceiptRecord(sid="DY1", conversation_sid=CONV, message_sid=MSG, status=DeliveryStatus.READ)
        key = k.receipts(None, CONV, MSG)
        await cache.set(key, [receipt.to_dict()], ttl=30)
        first = (await cache.get_many([key], decode=receipts_of))[key]
        second = (await cache.get_many([key], decode=receipts_of))[key]
        assert first == second == [receipt] and first is not second  # another replica may have written it
    finally:
        await cache.close()
