"""Storms: thousands of webhooks, duplicated and shuffled, end in exactly the emulator's state, on one gateway
(SQLite) and on two replicas sharing Redis (each receiving half); a subscriber on one sees the other's events.

Every gateway is served by uvicorn on an ephemeral port; runs in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from delivery_gateway.emulator.app import EmulatorState
from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.emulator.store import CHAT
from delivery_gateway.kernel.settings import Settings
from tests.live.harness import TransportWsClient, serve_gateway
from tests.live.storm import duplicated_and_shuffled, post_all, storm_state


def settings_for(store_url: str, pubsub_url: str = "memory://") -> Settings:
    return Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        DELIVERY_GATEWAY_STORE_URL=store_url,
        DELIVERY_GATEWAY_PUBSUB_URL=pubsub_url,
    )


async def assert_ledger_matches(ledger, state: EmulatorState) -> int:
    checked = 0
    for receipts in state.store.receipts.values():
        for receipt in receipts.values():
            record = await ledger.receipt(receipt.sid)
            assert record is not None, receipt.sid
            assert (record.status.value, record.error_code) == (receipt.status, receipt.error_code), receipt.sid
            history = {h.status.value for h in await ledger.history(receipt.sid)}
            assert receipt.status in history and history <= receipt.reached
            checked += 1
    for participants in state.store.participants.values():
        for participant in participants.values():
            if participant.channel == CHAT:
                assert await ledger.read_horizon(participant.sid) == participant.last_read_message_index
    return checked


async def test_storm_on_one_gateway_ends_in_the_emulator_state(tmp_path):
    state, events = await storm_state(300)
    storm = duplicated_and_shuffled(events)
    assert len(storm) > 3000
    async with serve_gateway(settings_for(f"sqlite:///{tmp_path}/l.sqlite3")) as gateway:
        statuses = await post_all([gateway.webhook_url], DEFAULT_AUTH_TOKEN, storm)
        assert set(statuses) == {200}
        await gateway.ingest.drain()
        checked = await assert_ledger_matches(gateway.ledger, state)
        assert checked > 500
        changes = []
        for conversation in state.store.conversations:
            changes += await gateway.ledger.changes_after(conversation, 0, limit=100_000)
        deliveries = [c for c in changes if c.kind.value == "delivery"]
        # Exactly one change per status a receipt actually moved to: duplicates and stale events add nothing.
        assert len(deliveries) <= sum(1 for e in events if e["EventType"] == "onDeliveryUpdated")
        assert await gateway.ledger.inbox_pending() == []


@pytest.mark.redis
async def test_two_replicas_on_redis(redis_url):
    state, events = await storm_state(150, seed=9)
    storm = duplicated_and_shuffled(events, seed=3)
    settings = settings_for(redis_url, redis_url)
    conversation = next(iter(state.store.conversations))
    query = """subscription($c: String!) { deliveryUpdates(conversationSid: $c) { cursor receipt { sid } } }"""
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve_gateway(settings))
        b = await stack.enter_async_context(serve_gateway(settings))
        client = await stack.enter_async_context(TransportWsClient.connect(b.ws_url))
        await client.subscribe(query, {"c": conversation})
        await asyncio.sleep(0.2)
        # One webhook to replica A reaches the subscriber on replica B.
        first = next(
            e for e in events if e["EventType"] == "onDeliveryUpdated" and e["ConversationSid"] == conversation
        )
        statuses = await post_all([a.webhook_url], DEFAULT_AUTH_TOKEN, [first])
        assert statuses == [200]
        message = await client.next()
        assert message["payload"]["data"]["deliveryUpdates"]["receipt"]["sid"] == first["DeliveryReceiptSid"]

        statuses = await post_all([a.webhook_url, b.webhook_url], DEFAULT_AUTH_TOKEN, storm)
        assert set(statuses) == {200}
        await a.ingest.drain()
        await b.ingest.drain()
        await assert_ledger_matches(a.ledger, state)
        # The subscriber on B saw every delivery change of its conversation exactly once, in cursor order.
        expected = [
            c.seq for c in await b.ledger.changes_after(conversation, 0, limit=100_000) if c.kind.value == "delivery"
        ]
        seen = [int(message["payload"]["data"]["deliveryUpdates"]["cursor"])]
        while len(seen) < len(expected):
            seen.append(int((await client.next())["payload"]["data"]["deliveryUpdates"]["cursor"]))
        assert sorted(seen) == expected
