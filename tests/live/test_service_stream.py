"""The service-wide subscription under a storm, end to end: two replicas sharing PostgreSQL and Redis pub/sub, each
receiving half of a duplicated, shuffled storm concurrently; `serviceDeliveryUpdates` subscribers on either replica
(one filtered by status, one on another service, one dropping and resuming mid-storm on alternating replicas)
receive every delivery change of their service exactly once, in strictly increasing cursor order, and a resume from
any cursor, on either replica, replays exactly what follows it.

Every gateway is app.py's `create_app`, served by uvicorn on an ephemeral port; GraphQL over graphql-transport-ws.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest

from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.kernel.settings import Settings
from tests.live.harness import TransportWsClient, serve_gateway
from tests.live.storm import duplicated_and_shuffled, post_all, storm_state

STREAM = """
subscription($s: String, $st: [DeliveryStatus!], $a: String) {
  serviceDeliveryUpdates(serviceSid: $s, statuses: $st, after: $a) { cursor conversationSid receipt { status } }
}
"""
FAILURES = ["FAILED", "UNDELIVERED"]


def settings_for(postgres_url: str, redis_url: str) -> Settings:
    # A queue deep enough for a whole storm: this is the ordering proof (SLOW_CONSUMER has tests of its own).
    return Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        DELIVERY_GATEWAY_STORE_URL=postgres_url,
        DELIVERY_GATEWAY_PUBSUB_URL=redis_url,
        DELIVERY_GATEWAY_SUBSCRIBER_QUEUE_SIZE=100_000,
    )


def event_of(message: dict) -> dict:
    assert message["type"] == "next" and "errors" not in message["payload"], message
    return message["payload"]["data"]["serviceDeliveryUpdates"]


async def resuming_follower(urls: list[str], service: str, out: list[int], stop: asyncio.Event) -> int:
    """Drops its connection every few events and resumes from the last cursor it saw, on the next replica each
    time; how many times it resumed."""
    resumes = 0
    while True:
        after = str(out[-1]) if out else None
        async with TransportWsClient.connect(urls[resumes % len(urls)], close_timeout=0.2) as client:
            await client.subscribe(STREAM, {"s": service, "a": after})
            for _ in range(9 + resumes % 7):
                try:
                    out.append(int(event_of(await client.next(wait=1.0))["cursor"]))
                except TimeoutError:
                    if stop.is_set():
                        return resumes
        resumes += 1


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_replicas_deliver_the_service_stream_in_cursor_order(postgres_url, redis_url):
    state, events = await storm_state(180, seed=21, other_service=True)
    service = state.default_service_sid
    (other,) = {c.service_sid for c in state.store.conversations.values()} - {service}
    storm = duplicated_and_shuffled(events, seed=8)
    assert len(storm) > 1000
    settings = settings_for(postgres_url, redis_url)
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve_gateway(settings))
        b = await stack.enter_async_context(serve_gateway(settings))
        clients = {}
        for name, replica, variables in (
            ("all on a", a, {"s": service}),
            ("all on b", b, {"s": service}),
            ("failures on b", b, {"s": service, "st": FAILURES}),
            ("other on a", a, {"s": other}),
        ):
            clients[name] = await stack.enter_async_context(TransportWsClient.connect(replica.ws_url))
            await clients[name].subscribe(STREAM, variables)
        await asyncio.sleep(0.3)  # every subscription is live

        seen: dict[str, list[dict]] = {name: [] for name in clients}
        followers = [asyncio.create_task(clients[name].collect(seen[name], stop, event_of)) for name in clients]
        resumed: list[int] = []
        resumer = asyncio.create_task(resuming_follower([a.ws_url, b.ws_url], service, resumed, stop))
        statuses = await post_all([a.webhook_url, b.webhook_url], DEFAULT_AUTH_TOKEN, storm, concurrency=48)
        assert set(statuses) == {200}
        await a.ingest.drain()
        await b.ingest.drain()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*followers), 60)
        resumes = await asyncio.wait_for(resumer, 120)

        changes = {sid: await a.ledger.service_changes_after(sid, 0, limit=1_000_000) for sid in (service, other)}

        def expected(sid: str, statuses: list[DeliveryStatus] | None = None) -> list[int]:
            deliveries = [c for c in changes[sid] if c.kind.value == "delivery"]
            return [c.seq for c in deliveries if not statuses or c.receipt.status in statuses]

        everything = expected(service)
        failures = expected(service, [DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED])
        assert len(everything) > 300 and len(failures) > 20 and len(expected(other)) > 100
        # Every change of the service, once, in cursor order: on both replicas, dropped and resumed, or filtered.
        for name, want in (("all on a", everything), ("all on b", everything), ("failures on b", failures)):
            cursors = [int(e["cursor"]) for e in seen[name]]
            assert strictly_increasing(cursors), name
            assert cursors == want, name
        assert resumed == everything and resumes > 10
        assert [int(e["cursor"]) for e in seen["other on a"]] == expected(other)
        assert {e["receipt"]["status"] for e in seen["failures on b"]} == set(FAILURES)
        of_service = {c.sid for c in state.store.conversations.values() if c.service_sid == service}
        assert {e["conversationSid"] for e in seen["all on a"]} == of_service and len(of_service) == 2
        # The events say what the ledger recorded: each change's receipt status.
        recorded = {c.seq: c.receipt.status.name for c in changes[service] if c.kind.value == "delivery"}
        assert all(recorded[int(e["cursor"])] == e["receipt"]["status"] for e in seen["all on b"])

        # A resume from any cursor, on either replica, replays exactly what follows it.
        for n, cursor in enumerate([0, *everything[:: max(1, len(everything) // 5)]]):
            replica = (a, b)[n % 2]
            async with TransportWsClient.connect(replica.ws_url, close_timeout=0.2) as client:
                await client.subscribe(STREAM, {"s": service, "a": str(cursor)})
                rest = [s for s in everything if s > cursor]
                got = [int(event_of(await client.next(wait=10))["cursor"]) for _ in rest]
                assert got == rest
                with pytest.raises(TimeoutError):
                    await client.next(wait=0.2)
