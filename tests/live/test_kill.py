"""Kill -9 during a storm: no acknowledged event is lost; a subscriber resuming from its cursor gets the rest.

The gateway runs as a subprocess on a SQLite ledger; it is SIGKILLed mid-storm and restarted on the same file.
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
from tests.live.test_storm import assert_ledger_matches

ROOT = Path(__file__).resolve().parents[2]
QUERY = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"


@contextlib.asynccontextmanager
async def gateway_process(store_url: str, pubsub_url: str = "memory://"):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.live.gateway_process",
        store_url,
        DEFAULT_AUTH_TOKEN,
        pubsub_url,
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


async def test_sigkill_mid_storm_loses_no_acknowledged_event(tmp_path):
    state, events = await storm_state(200, seed=21)
    storm = duplicated_and_shuffled(events, seed=8)
    conversation = next(iter(state.store.conversations))
    store_url = f"sqlite:///{tmp_path}/ledger.sqlite3"

    seen_before: list[int] = []
    async with gateway_process(store_url) as (proc, base):
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


@pytest.mark.redis
async def test_two_gateway_processes_share_redis(redis_url):
    """A webhook posted to one process reaches a subscriber connected to the other (ledger + pub/sub on Redis)."""
    state, events = await storm_state(4, seed=2)
    conversation = next(iter(state.store.conversations))
    mine = [e for e in events if e.get("ConversationSid") == conversation and e["EventType"] == "onDeliveryUpdated"]
    async with gateway_process(redis_url, redis_url) as (_, a), gateway_process(redis_url, redis_url) as (_, b):
        async with TransportWsClient.connect(b.replace("http", "ws") + "/graphql") as client:
            await client.subscribe(QUERY, {"c": conversation})
            await asyncio.sleep(0.3)
            assert await post_all([a + "/webhooks/twilio"], DEFAULT_AUTH_TOKEN, mine) == [200] * len(mine)
            ledger = create_ledger(redis_url)
            await ledger.start()
            try:
                for _ in range(400):
                    changes = await ledger.changes_after(conversation, 0)
                    if len(changes) >= len(mine) and not await ledger.inbox_pending():
                        break
                    await asyncio.sleep(0.01)
                expected = [c.seq for c in changes if c.kind.value == "delivery"]
            finally:
                await ledger.close()
            got = [int((await client.next(wait=10))["payload"]["data"]["deliveryUpdates"]["cursor"]) for _ in expected]
            assert got == expected
