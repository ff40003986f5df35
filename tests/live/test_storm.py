"""Storms: thousands of webhooks, duplicated and shuffled, end in exactly the emulator's state on one gateway (SQLite,
PostgreSQL); on two replicas sharing PostgreSQL + Redis pub/sub (each receiving half, concurrently), every
subscriber (on either replica, one dropping and resuming mid-storm, one on the raw service channel) receives every
change exactly once in strictly increasing cursor order, and a resume from any cursor misses nothing.

Every gateway is served by uvicorn on an ephemeral port; runs in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from delivery_gateway.emulator.app import EmulatorState
from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.emulator.store import CHAT
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import LedgerChange, ReportDimension
from delivery_gateway.pubsub import create_pubsub, service_channel
from tests.live.harness import TransportWsClient, serve_gateway
from tests.live.storm import duplicated_and_shuffled, post_all, storm_state

QUERY = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"


def settings_for(store_url: str, pubsub_url: str = "memory://") -> Settings:
    return Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        DELIVERY_GATEWAY_STORE_URL=store_url,
        DELIVERY_GATEWAY_PUBSUB_URL=pubsub_url,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/l.sqlite3"
    return request.getfixturevalue("postgres_url")


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


async def test_storm_on_one_gateway_ends_in_the_emulator_state(store_url):
    state, events = await storm_state(300)
    storm = duplicated_and_shuffled(events)
    assert len(storm) > 3000
    async with serve_gateway(settings_for(store_url)) as gateway:
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
        await assert_reports_match(gateway.ledger, state, events)


async def assert_reports_match(ledger, state: EmulatorState, events: list[dict[str, str]]) -> None:
    """The ledger's reports over a storm whose outcome is known: every status that reached the gateway, once."""
    (service_sid,) = {c.service_sid for c in state.store.conversations.values()}
    reached = {(e["DeliveryReceiptSid"], e["Status"]): e for e in events if e["EventType"] == "onDeliveryUpdated"}
    by_status = Counter(status for _, status in reached)
    by_code = Counter(int(e["ErrorCode"]) if e.get("ErrorCode") else None for e in reached.values())
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    report = await ledger.delivery_report(service_sid, since, until, [ReportDimension.STATUS])
    assert {r.status.value: r.count for r in report} == by_status
    report = await ledger.delivery_report(service_sid, since, until, [ReportDimension.ERROR_CODE])
    assert {r.error_code: r.count for r in report} == by_code
    failed = {
        r.sid: r.error_code
        for receipts in state.store.receipts.values()
        for r in receipts.values()
        if r.status in ("failed", "undelivered")
    }
    page = await ledger.failed_deliveries(service_sid, since, until, first=1000)
    assert {i.receipt_sid: i.error_code for i in page.items} == failed and failed
    assert [i.failed_at for i in page.items] == sorted((i.failed_at for i in page.items), reverse=True)


def cursor_of(message: dict) -> int:
    assert message["type"] == "next", message
    return int(message["payload"]["data"]["deliveryUpdates"]["cursor"])


async def delivery_cursors(client: TransportWsClient, out: list[int], stop: asyncio.Event) -> None:
    """Cursors of deliveryUpdates into `out` until `stop` is set and nothing more arrives for a second."""
    await client.collect(out, stop, cursor_of)


async def resuming_subscriber(ws_url: str, conversation: str, out: list[int], stop: asyncio.Event) -> int:
    """Drops its connection every few events and resumes from the last cursor it saw; how many times it did."""
    resumes = 0
    while True:
        after = str(out[-1]) if out else None
        async with TransportWsClient.connect(ws_url, close_timeout=0.2) as client:
            await client.subscribe(QUERY, {"c": conversation, "a": after})
            for _ in range(7 + resumes % 5):
                try:
                    out.append(cursor_of(await client.next(wait=1.0)))
                except TimeoutError:
                    if stop.is_set():
                        return resumes
        resumes += 1


@contextlib.asynccontextmanager
async def service_channel_listener(redis_url: str, service_sid: str) -> AsyncIterator[list[int]]:
    """The sequence numbers published on the service's channel, as a subscriber of its own on Redis receives them
    (the list fills while the block runs)."""
    broker = create_pubsub(redis_url)
    await broker.start()
    seqs: list[int] = []
    listening = asyncio.Event()

    async def listen() -> None:
        async with broker.subscribe(service_channel(service_sid), queue_size=1_000_000) as subscriber:
            listening.set()
            async for text in subscriber:
                seqs.append(LedgerChange.from_json(text).seq)

    task = asyncio.create_task(listen())
    try:
        await listening.wait()
        yield seqs
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.close()


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_replicas_on_postgres_publish_in_cursor_order(postgres_url, redis_url):
    state, events = await storm_state(150, seed=9)
    storm = duplicated_and_shuffled(events, seed=3)
    settings = settings_for(postgres_url, redis_url)
    conversation = next(iter(state.store.conversations))
    service_sid = state.store.conversations[conversation].service_sid
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve_gateway(settings))
        b = await stack.enter_async_context(serve_gateway(settings))
        on_a = await stack.enter_async_context(TransportWsClient.connect(a.ws_url))
        on_b = await stack.enter_async_context(TransportWsClient.connect(b.ws_url))
        await on_a.subscribe(QUERY, {"c": conversation})
        await on_b.subscribe(QUERY, {"c": conversation})
        raw = await stack.enter_async_context(service_channel_listener(redis_url, service_sid))
        await asyncio.sleep(0.3)  # both subscriptions are live

        seen_a: list[int] = []
        seen_b: list[int] = []
        resumed: list[int] = []
        followers = [
            asyncio.create_task(delivery_cursors(on_a, seen_a, stop)),
            asyncio.create_task(delivery_cursors(on_b, seen_b, stop)),
        ]
        resumer = asyncio.create_task(resuming_subscriber(b.ws_url, conversation, resumed, stop))
        statuses = await post_all([a.webhook_url, b.webhook_url], DEFAULT_AUTH_TOKEN, storm, concurrency=48)
        assert set(statuses) == {200}
        await a.ingest.drain()
        await b.ingest.drain()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*followers), 60)
        resumes = await asyncio.wait_for(resumer, 120)

        await assert_ledger_matches(a.ledger, state)
        changes = await b.ledger.changes_after(conversation, 0, limit=100_000)
        expected = [c.seq for c in changes if c.kind.value == "delivery"]
        assert len(expected) > 100
        for seen in (seen_a, seen_b, resumed):
            assert strictly_increasing(seen), seen
            assert seen == expected
        assert resumes > 5, "the resuming subscriber should have dropped and resumed many times"
        # Across conversations too: the service channel carried every change of the service, in sequence order.
        assert strictly_increasing(raw)
        assert raw == [c.seq for c in await a.ledger.service_changes_after(service_sid, 0, limit=1_000_000)]

        # A resume from any cursor, on either replica, replays exactly what follows it.
        for n, cursor in enumerate([0, *expected[:: max(1, len(expected) // 6)]]):
            replica = (a, b)[n % 2]
            async with TransportWsClient.connect(replica.ws_url, close_timeout=0.2) as client:
                await client.subscribe(QUERY, {"c": conversation, "a": str(cursor)})
                rest = [s for s in expected if s > cursor]
                got = [cursor_of(await client.next(wait=10)) for _ in rest]
                assert got == rest
