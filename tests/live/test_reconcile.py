"""Reconciliation end to end: the emulator drops EVERY webhook (Twilio does not retry them: the Chat service's
`post_webhook_retry_count` defaults to 0), yet subscribers and queries converge to the emulator's state within
two reconcile periods, also across a restart of the gateway in the middle.

Runs the emulator and the gateway under uvicorn on ephemeral ports (the restart case runs the gateway as a
process of its own, stopped with SIGTERM like a deploy and started again on the same store).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from delivery_gateway.emulator import RunningEmulator, serve_emulator
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import (
    DELIVERY_UPDATES,
    MESSAGE_QUERY,
    conversation_with_recipients,
    emulator_config,
    live,
)

PERIOD = 0.5  # seconds between re-reads in the in-process test (DELIVERY_GATEWAY_RECONCILE_SECONDS)
# The restart test's gateway is a process of its own beside the test's emulator: on a loaded 2-core machine one
# round (a claim, a Receipts list, an apply, a publish, a WebSocket frame) across processes can take a few hundred
# milliseconds, so its period is a second.
PROCESS_PERIOD = 1.0
ROOT = Path(__file__).resolve().parents[2]


def emulated(emulator: RunningEmulator, message_sid: str) -> dict[str, str]:
    return {r.sid: r.status.upper() for r in emulator.state.store.receipts_of(message_sid)}


async def query(http: httpx.AsyncClient, conversation_sid: str, message_sid: str) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": MESSAGE_QUERY, "variables": {"c": conversation_sid, "m": message_sid}}
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]["message"]


async def next_update(client: TransportWsClient, wait: float) -> dict[str, Any]:
    message = await client.next(wait=wait)
    assert message["type"] == "next", message
    return message["payload"]["data"]["deliveryUpdates"]


async def converge(
    client: TransportWsClient, state: dict[str, str], want: dict[str, str], deadline: float
) -> list[dict[str, Any]]:
    """Subscription events until the receipts' statuses they carried equal `want`; fails at `deadline` (loop time)."""
    loop = asyncio.get_running_loop()
    updates = []
    while state != want:
        remaining = deadline - loop.time()
        assert remaining > 0, f"subscriber saw {state}, Twilio has {want} (events: {updates})"
        try:
            update = await next_update(client, remaining)
        except TimeoutError:
            continue  # the assertion above reports it
        updates.append(update)
        state[update["receipt"]["sid"]] = update["receipt"]["status"]
    return updates


async def test_all_webhooks_dropped_subscribers_and_queries_converge_within_two_periods(tmp_path):
    config = emulator_config(webhook_drop_rate=1.0)
    async with live(tmp_path, config, DELIVERY_GATEWAY_RECONCILE_SECONDS=str(PERIOD)) as lv:
        emulator, state = lv.emulator, lv.emulator.state
        conversation = conversation_with_recipients(emulator)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        first = await query(lv.http, conversation.sid, message.sid)  # seen by a query: tracked
        assert {r["status"] for r in first["receipts"]} == {"SENT"}
        seen = {r["sid"]: r["status"] for r in first["receipts"]}

        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid})
            await asyncio.sleep(0.1)  # registered before Twilio moves on
            await state.simulator.advance_all()  # sms: delivered; whatsapp: delivered, read; every webhook lost
            loop = asyncio.get_running_loop()
            changed_at = loop.time()
            want = emulated(emulator, message.sid)
            assert want != seen
            updates = await converge(client, dict(seen), want, changed_at + 2 * PERIOD)
            took = loop.time() - changed_at

        assert state.webhooks.dropped > 0 and state.webhooks.delivered == 0
        metrics = lv.gateway.services.metrics
        assert (
            metrics.sample(
                "delivery_gateway_webhooks_received_total", {"event_type": "onDeliveryUpdated", "outcome": "accepted"}
            )
            == 0
        )
        # Every event equals what a query returns now; the query equals Twilio.
        now = await query(lv.http, conversation.sid, message.sid)
        assert {r["sid"]: r["status"] for r in now["receipts"]} == want
        assert updates[-1]["message"]["delivery"] == now["delivery"]
        assert updates[-1]["message"]["ticks"] == now["ticks"]
        assert took <= 2 * PERIOD
        # What reconciliation found is recorded as such, and counted.
        for receipt_sid, status in want.items():
            history = await lv.gateway.ledger.history(receipt_sid)
            assert [(e.status.value.upper(), e.source) for e in history][-1] == (status, "reconcile")
        assert metrics.sample("delivery_gateway_reconcile_changes_total", {"status": "read"}) == 1
        assert metrics.sample("delivery_gateway_reconcile_changes_total", {"status": "delivered"}) == 1
        assert metrics.sample("delivery_gateway_reconcile_polled_receipts_total") >= 2


@contextlib.asynccontextmanager
async def gateway_process(store_url: str, emulator: RunningEmulator):
    """The gateway as a process of its own (tests/live/gateway_process.py) on `store_url`, reading Twilio from
    `emulator`, reconciling every PROCESS_PERIOD; stopped with SIGTERM (a graceful stop, as a deploy does)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": emulator.base_url,
        "TWILIO_ACCOUNT_SID": emulator.state.config.account_sid,
        "DELIVERY_GATEWAY_RECONCILE_SECONDS": str(PROCESS_PERIOD),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.live.gateway_process",
        store_url,
        emulator.state.config.auth_token,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
        await proc.wait()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite3"
    return request.getfixturevalue("postgres_url")


async def test_changes_made_while_the_gateway_was_down_reach_subscribers_within_two_periods_of_its_restart(
    store_url,
):
    config = emulator_config(webhook_drop_rate=1.0)
    async with serve_emulator(config) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        before, _ = state.store.create_message(conversation.sid, author="agent", body="before", notify=True)
        loop = asyncio.get_running_loop()

        async with gateway_process(store_url, emulator) as base_url:
            state.set_webhook(post_webhook_url=base_url + "/webhooks/twilio", filters=WEBHOOK_FILTERS)
            async with httpx.AsyncClient(base_url=base_url) as http:
                seen = {r["sid"]: r["status"] for r in (await query(http, conversation.sid, before.sid))["receipts"]}
                ws_url = base_url.replace("http", "ws", 1) + "/graphql"
                async with TransportWsClient.connect(ws_url) as client:
                    await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid})
                    await asyncio.sleep(0.1)
                    await state.simulator.advance_all()
                    want = emulated(emulator, before.sid)
                    updates = await converge(client, dict(seen), want, loop.time() + 2 * PROCESS_PERIOD)
                cursor = updates[-1]["cursor"]
                # A second message, seen by a query before the stop; Twilio delivers it while no gateway runs.
                during, _ = state.store.create_message(conversation.sid, author="agent", body="during", notify=True)
                seen_during = {
                    r["sid"]: r["status"] for r in (await query(http, conversation.sid, during.sid))["receipts"]
                }
                assert set(seen_during.values()) == {"SENT"}

        await state.simulator.advance_all()  # while the gateway is down
        want_during = emulated(emulator, during.sid)
        assert want_during != seen_during

        async with gateway_process(store_url, emulator) as base_url:
            started = loop.time()
            state.set_webhook(post_webhook_url=base_url + "/webhooks/twilio", filters=WEBHOOK_FILTERS)
            ws_url = base_url.replace("http", "ws", 1) + "/graphql"
            async with TransportWsClient.connect(ws_url) as client:
                await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid, "after": cursor})
                updates = await converge(client, dict(seen_during), want_during, started + 2 * PROCESS_PERIOD)
            assert all(int(u["cursor"]) > int(cursor) for u in updates)
            async with httpx.AsyncClient(base_url=base_url) as http:
                now = await query(http, conversation.sid, during.sid)
                assert {r["sid"]: r["status"] for r in now["receipts"]} == want_during
                assert updates[-1]["message"]["delivery"] == now["delivery"]
                old = await query(http, conversation.sid, before.sid)
                assert {r["sid"]: r["status"] for r in old["receipts"]} == want
        assert state.webhooks.delivered == 0
