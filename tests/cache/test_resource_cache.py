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
