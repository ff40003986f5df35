"""Pub/sub: fan-out, one upstream subscription per channel, bounded queues (SLOW_CONSUMER), both backends.

Redis cases are marked `redis` and skip without a server; never sleeps longer than a delivery takes.
"""

from __future__ import annotations

import asyncio

import pytest

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.callers import Caller, CallerKind
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import new_sid
from delivery_gateway.ledger import create_ledger
from delivery_gateway.ledger.events import ChangeKind, LedgerChange
from delivery_gateway.pubsub import SlowConsumer, conversation_channel, create_pubsub
from tests.app_support import NO_UPSTREAM
from tests.postgres_support import live_store_url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def pubsub_url(request):
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


async def test_fan_out_and_unsubscribe(pubsub_url):
    broker = create_pubsub(pubsub_url, queue_size=10)
    await broker.start()
    try:
        async with broker.subscribe("c") as a, broker.subscribe("c") as b, broker.subscribe("other") as o:
            assert broker.subscriber_count("c") == 2
            await broker.publish("c", "one")
            await broker.publish("c", "two")
            assert [await asyncio.wait_for(a.__anext__(), 2) for _ in range(2)] == ["one", "two"]
            assert [await asyncio.wait_for(b.__anext__(), 2) for _ in range(2)] == ["one", "two"]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(o.__anext__(), 0.1)
        assert broker.subscriber_count("c") == 0
    finally:
        await broker.close()


async def test_slow_consumer_is_closed_not_buffered(pubsub_url):
    broker = create_pubsub(pubsub_url, queue_size=3)
    await broker.start()
    try:
        async with broker.subscribe("c") as slow, broker.subscribe("c") as fast:
            received = []
            for i in range(10):
                await broker.publish("c", str(i))
                received.append(await asyncio.wait_for(fast.__anext__(), 2))
            assert received == [str(i) for i in range(10)]
            await asyncio.sleep(0.05)
            with pytest.raises(SlowConsumer):
                async for _ in slow:
                    pass
            assert slow.overflowed and slow._queue.qsize() <= 1
            assert broker.subscriber_count("c") == 1  # the fast one is unaffected
    finally:
        await broker.close()


async def test_slow_subscription_gets_a_slow_consumer_graphql_error(tmp_path):
    settings = Settings(_env_file=None, DELIVERY_GATEWAY_SUBSCRIBER_QUEUE_SIZE=2)
    ledger = create_ledger(live_store_url(tmp_path, "memory://"))
    await ledger.start()
    broker = create_pubsub("memory://", queue_size=2)
    services = GatewayServices(settings=settings, upstream=NO_UPSTREAM, ledger=ledger, pubsub=broker)
    context = RequestContext(services, Caller(kind=CallerKind.INTERNAL, identity="t"))
    conv = new_sid("CH")
    schema = build_schema(settings)
    stream = await schema.subscribe(
        "subscription($c: String!) { readHorizonUpdates(conversationSid: $c) { cursor } }",
        variable_values={"c": conv},
        context_value=context,
    )
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)  # the subscriber is registered
    for seq in range(1, 6):
        payload = {"participant_sid": new_sid("MB"), "last_read_message_index": seq}
        change = LedgerChange(seq, ChangeKind.READ_HORIZON, conv, payload)
        await broker.publish(conversation_channel(conv), change.to_json())
    results = [await asyncio.wait_for(first, 2)]
    while True:
        try:
            results.append(await asyncio.wait_for(stream.__anext__(), 2))
        except StopAsyncIteration:
            break
        if results[-1].errors:
            break
    errors = [r.errors for r in results if r.errors]
    assert errors, results
    assert errors[0][0].extensions["code"] == "SLOW_CONSUMER"
    assert broker.subscriber_count(conversation_channel(conv)) == 0
    await ledger.close()


@pytest.mark.redis
async def test_redis_reconnect_makes_subscribers_catch_up_from_the_ledger(redis_url, tmp_path):
    """A message lost while the pub/sub connection was down is recovered from the ledger (GAP -> replay)."""
    import redis.asyncio as aioredis

    from delivery_gateway.changes import conversation_changes
    from tests.live.events_factory import delivery

    settings = Settings(_env_file=None)
    ledger = create_ledger(live_store_url(tmp_path, "memory://"))
    broker = create_pubsub(redis_url, queue_size=16)
    await ledger.start()
    await broker.start()
    services = GatewayServices(settings=settings, upstream=NO_UPSTREAM, ledger=ledger, pubsub=broker)
    conv, msg, receipt = new_sid("CH"), new_sid("IM"), new_sid("DY")
    try:
        stream = conversation_changes(services.ledger, services.pubsub, conv, None, [ChangeKind.DELIVERY])
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.1)
        published = await ledger.apply(delivery(conv, msg, receipt, "sent", 1))
        await broker.publish(conversation_channel(conv), published.change.to_json())
        assert (await asyncio.wait_for(first, 2)).seq == published.change.seq
        lost = await ledger.apply(delivery(conv, msg, receipt, "delivered", 2))  # never published
        admin = aioredis.Redis.from_url(redis_url.split("?")[0])
        killed = 0
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] == broker.client_name:
                killed += await admin.client_kill_filter(_id=client["id"])
        await admin.aclose()
        assert killed == 1
        caught_up = await asyncio.wait_for(stream.__anext__(), 5)
        assert caught_up.seq == lost.change.seq
        await stream.aclose()
    finally:
        await broker.close()
        await ledger.close()
