"""Kill -9 during a storm: no acknowledged event is lost; a subscriber resuming from its cursor gets the rest.

The gateway runs as a subprocess on a SQLite file or a PostgreSQL database; it is SIGKILLed mid-storm and
restarted on the same store. Two gateway processes share PostgreSQL + Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from delivery_gateway.emulator.config import DEFAULT_AUTH_TOKEN
from delivery_gateway.ledger import create_ledger
from tests.live.harness import TransportWsClient
from tests.live.storm import duplicated_and_shuffled, post_all, storm_state
from tests.live.test_storm import (
    assert_ledger_matches,
    delivery_cursors,
    service_channel_listener,
    strictly_increasing,
)

ROOT = Path(__file__).resolve().parents[2]
QUERY = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"


@contextlib.asynccontextmanager
async def gateway_process(store_url: str, pubsub_url: str = "memory://", apply_delay: float = 0.0):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.live.gateway_process",
        store_url,
        DEFAULT_AUTH_TOKEN,
        pubsub_url,
        str(apply_delay),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("PORT "), line
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def collect(client: TransportWsClient, into: list[int]) -> None:
    with contextlib.suppress(Exception):  # ends when the connection dies
        while True:
            message = await client.next(wait=30)
            if message["type"] != "next":
                return
            into.append(int(message["payload"]["data"]["deliveryUpdates"]["cursor"]))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("postgres_url")


async def test_sigkill_mid_storm_loses_no_acknowledged_event(store_url):
    state, events = await storm_state(200, seed=21)
    storm = duplicated_and_shuffled(events, seed=8)
    conversation = next(iter(state.store.conversations))

    seen_before: list[int] = []
    # Each batch is applied 50 ms late, so the kill surely finds acknowledged events still in the inbox.
    async with gateway_process(store_url, apply_delay=0.05) as (proc, base):
        async with TransportWsClient.connect(base.replace("http", "ws") + "/graphql") as client:
            await client.subscribe(QUERY, {"c": conversation})
            await asyncio.sleep(0.2)
            listener = asyncio.create_task(collect(client, seen_before))
            progress: list[int] = []
            posting = asyncio.create_task(
                post_all([base + "/webhooks/twilio"], DEFAULT_AUTH_TOKEN, storm, statuses=progress)
            )
            for _ in range(3000):  # kill once ~40% of the storm was acknowledged
                if posting.done() or progress.count(200) >= 0.4 * len(storm):
                    break
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            statuses = await posting
            await asyncio.wait_for(listener, 10)
    acked = [e for e, s in zip(storm, statuses, strict=True) if s == 200]
    unacked = [e for e, s in zip(storm, statuses, strict=True) if s != 200]
    assert 0 < len(acked) < len(storm), (len(acked), len(storm))
    assert seen_before == sorted(seen_before) and len(seen_before) == len(set(seen_before))
    dead = create_ledger(store_url)
    await dead.start()
    left_unprocessed = len(await dead.inbox_pending(limit=100_000))
    await dead.close()
    assert left_unprocessed > 0  # acknowledged, not yet processed when killed: the restart must recover them

    async with gateway_process(store_url) as (proc, base):
        # Restarted: every acknowledged event is in the ledger (recovered from the inbox if need be).
        ledger = create_ledger(store_url)
        await ledger.start()
        try:
            for event in acked:
                if event["EventType"] == "onDeliveryUpdated":
                    history = {h.status.value for h in await ledger.history(event["DeliveryReceiptSid"])}
                    assert event["Status"] in history
                elif event["EventType"] == "onParticipantUpdated" and event.get("LastReadMessageIndex"):
                    horizon = await ledger.read_horizon(event["ParticipantSid"])
                    assert horizon is not None and horizon >= int(event["LastReadMessageIndex"])
            assert await ledger.inbox_pending() == []

            async with TransportWsClient.connect(base.replace("http", "ws") + "/graphql") as client:
                cursor = str(seen_before[-1]) if seen_before else None
                await client.subscribe(QUERY, {"c": conversation, "a": cursor})
                await asyncio.sleep(0.2)
                # Twilio retries what was not acknowledged.
                assert set(await post_all([base + "/webhooks/twilio"], DEFAULT_AUTH_TOKEN, unacked)) <= {200}
                for _ in range(2000):  # the restarted gateway finishes processing what it acknowledged
                    if not await ledger.inbox_pending():
                        break
                    await asyncio.sleep(0.005)
                changes = await ledger.changes_after(conversation, 0, limit=100_000)
                expected = [c.seq for c in changes if c.kind.value == "delivery"]
                seen_after: list[int] = []
                while len(seen_before) + len(seen_after) < len(expected):
                    message = await client.next(wait=10)
                    seen_after.append(int(message["payload"]["data"]["deliveryUpdates"]["cursor"]))
                assert seen_before + seen_after == expected  # no gap, no duplicate, in order
                with contextlib.suppress(TimeoutError):
                    extra = await client.next(wait=0.3)
                    raise AssertionError(f"unexpected extra event {extra}")
            await assert_ledger_matches(ledger, state)
        finally:
            await ledger.close()


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_gateway_processes_on_postgres_and_redis_publish_in_cursor_order(postgres_url, redis_url):
    """Two gateway processes (ledger on PostgreSQL, pub/sub on Redis) take a concurrent storm, half each: a
    subscriber on each sees every change of its conversation once, in strictly increasing cursor order, and the
    service channel carries every change of the service in sequence order."""
    state, events = await storm_state(120, seed=2)
    storm = duplicated_and_shuffled(events, seed=4)
    conversation = next(iter(state.store.conversations))
    service_sid = state.store.conversations[conversation].service_sid
    processes = gateway_process(postgres_url, redis_url), gateway_process(postgres_url, redis_url)
    async with contextlib.AsyncExitStack() as stack:
        (_, a), (_, b) = [await stack.enter_async_context(p) for p in processes]
        clients = [
            await stack.enter_async_context(TransportWsClient.connect(base.replace("http", "ws") + "/graphql"))
            for base in (a, b)
        ]
        for client in clients:
            await client.subscribe(QUERY, {"c": conversation})
        raw = await stack.enter_async_context(service_channel_listener(redis_url, service_sid))
        await asyncio.sleep(0.3)
        stop = asyncio.Event()
        seen: list[list[int]] = [[], []]
        followers = [asyncio.create_task(delivery_cursors(c, out, stop)) for c, out in zip(clients, seen, strict=True)]
        urls = [a + "/webhooks/twilio", b + "/webhooks/twilio"]
        assert set(await post_all(urls, DEFAULT_AUTH_TOKEN, storm, concurrency=48)) == {200}
        ledger = create_ledger(postgres_url)
        await ledger.start()
        stack.push_async_callback(ledger.close)
        for _ in range(3000):  # both processes finish what they acknowledged
            if not await ledger.inbox_pending():
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*followers), 60)
        expected = [
            c.seq for c in await ledger.changes_after(conversation, 0, limit=100_000) if c.kind.value == "delivery"
        ]
        assert len(expected) > 100
        for got in seen:
            assert strictly_increasing(got) and got == expected
        assert strictly_increasing(raw)
        assert raw == [c.seq for c in await ledger.service_changes_after(service_sid, 0, limit=1_000_000)]
        await assert_ledger_matches(ledger, state)
