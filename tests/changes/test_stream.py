"""The change streams (changes/): a service's stream is every delivery change of its conversations, filtered by
status alike from the ledger and live; after a pub/sub gap either stream catches up its whole backlog in order.

In-process: an in-memory ledger and pub/sub; a gap is what a broker reports after losing messages.
"""

from __future__ import annotations

import asyncio

import pytest

from delivery_gateway.changes import conversation_changes, service_delivery_changes
from delivery_gateway.changes.stream import REPLAY_BATCH, SEEN_WINDOW
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import ChangeKind, create_ledger
from delivery_gateway.pubsub import GAP, conversation_channel, create_pubsub, service_channel
from tests.ledger import scenario

SERVICE = scenario.SERVICE_A


@pytest.fixture
async def ledger():
    ledger = create_ledger("memory://")
    await ledger.start()
    yield ledger
    await ledger.close()


def receipt_events(count: int, conversation: str, *, status: str = "sent", service: str = SERVICE) -> list:
    return [
        scenario.receipt_event(
            conversation, scenario.sid("IM", conversation, n), scenario.sid("DY", conversation, n, status), status,
            scenario.T0, service=service, error_code=30003 if status == "undelivered" else None,
        )
        for n in range(count)
    ]  # fmt: skip


async def listening(pubsub, channel: str) -> None:
    for _ in range(500):
        if pubsub.subscriber_count(channel):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nobody listens on {channel}")


async def take(stream, n: int) -> list:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(n)]


async def test_the_service_stream_catches_up_a_whole_backlog_after_a_gap(ledger):
    pubsub = create_pubsub("memory://", queue_size=16)
    await pubsub.start()
    stream = service_delivery_changes(ledger, pubsub, SERVICE, None)
    first = asyncio.ensure_future(anext(stream))
    await listening(pubsub, service_channel(SERVICE))
    lost = SEEN_WINDOW + REPLAY_BATCH + 17  # more than one catch-up read, more than the dedupe window
    conversations = [scenario.sid("CH", "gap", n) for n in range(3)]
    for n, conversation in enumerate(conversations):  # never published: the broker lost them all
        await ledger.apply_many(receipt_events(lost // 3 + (n < lost % 3), conversation))
    await ledger.apply_many(receipt_events(5, scenario.sid("CH", "elsewhere"), service=scenario.SERVICE_B))
    await pubsub.publish(service_channel(SERVICE), GAP)
    got = [await asyncio.wait_for(first, 5), *await take(stream, lost - 1)]
    expected = [c.seq for c in await ledger.service_changes_after(SERVICE, 0, limit=10_000)]
    assert [c.seq for c in got] == expected and len(expected) == lost
    assert {c.conversation_sid for c in got} == set(conversations)
    await stream.aclose()
    assert pubsub.subscriber_count(service_channel(SERVICE)) == 0
    await pubsub.close()


async def test_a_conversation_stream_catches_up_a_whole_backlog_after_a_gap(ledger):
    pubsub = create_pubsub("memory://", queue_size=16)
    await pubsub.start()
    conversation = scenario.sid("CH", "one")
    stream = conversation_changes(ledger, pubsub, conversation, None, [ChangeKind.DELIVERY])
    first = asyncio.ensure_future(anext(stream))
    await listening(pubsub, conversation_channel(conversation))
    await ledger.apply_many(receipt_events(REPLAY_BATCH + 40, conversation))
    await pubsub.publish(conversation_channel(conversation), GAP)
    got = [await asyncio.wait_for(first, 5), *await take(stream, REPLAY_BATCH + 39)]
    assert [c.seq for c in got] == list(range(1, REPLAY_BATCH + 41))
    await stream.aclose()
    await pubsub.close()


async def test_statuses_filter_the_replay_and_live_changes_alike(ledger):
    pubsub = create_pubsub("memory://")
    await pubsub.start()
    conversation = scenario.sid("CH", "mixed")
    before = await ledger.apply_many(
        receipt_events(3, conversation) + receipt_events(2, conversation, status="undelivered")
    )
    failures = [DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED]
    stream = service_delivery_changes(ledger, pubsub, SERVICE, 0, failures)
    replayed = await take(stream, 2)
    assert [c.seq for c in replayed] == [r.change.seq for r in before[3:]]
    pending = asyncio.ensure_future(anext(stream))
    await listening(pubsub, service_channel(SERVICE))
    for result in await ledger.apply_many(
        receipt_events(1, scenario.sid("CH", "live"), status="sent")
        + receipt_events(1, scenario.sid("CH", "live"), status="undelivered")
    ):
        await pubsub.publish(service_channel(SERVICE), result.change.to_json())
    live = await asyncio.wait_for(pending, 5)
    assert live.receipt.status is DeliveryStatus.UNDELIVERED and live.seq == 7
    await stream.aclose()
    await pubsub.close()


async def test_no_status_at_all_is_refused_at_once(ledger):
    with pytest.raises(ValueError, match="statuses"):
        service_delivery_changes(ledger, create_pubsub("memory://"), SERVICE, None, [])
