"""Every operation in docs/operations/ and every GraphQL example in README.md, run against a live gateway and emulator
as a client would: queries over HTTP, the mutation, and each subscription with a resume by cursor.

Drives only 127.0.0.1 servers started here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.live.harness import TransportWsClient

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations"
README = (ROOT / "README.md").read_text()


def document(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


async def answer(live_gateway, text: str, variables: dict, token: str) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{live_gateway.base_url}/graphql",
            json={"query": text, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    return response.json()


async def query(live_gateway, text: str, variables: dict, token: str) -> dict:
    body = await answer(live_gateway, text, variables, token)
    assert "errors" not in body, body
    return body["data"]


async def events_after(live_gateway, text: str, variables: dict, token: str, count: int) -> list[dict]:
    url = live_gateway.base_url.replace("http", "ws", 1) + "/graphql"
    async with TransportWsClient.connect(url, {"Authorization": f"Bearer {token}"}) as ws:
        op = await ws.subscribe(text, variables)
        received = []
        for _ in range(count):
            message = await ws.next(10)
            assert message["type"] == "next" and "errors" not in message["payload"], message
            received.append(next(iter(message["payload"]["data"].values())))
        await ws.complete(op)
    return received


async def check_subscription(
    live_gateway, name: str, variable: str, trigger: Callable[[], Awaitable[int]], token: str
) -> None:
    """Subscribes live, takes the first event, disconnects; more happens; resubscribing with `after` = that cursor
    replays exactly what came after it."""
    sid = live_gateway.conversation("order-1042")
    text = document(name) if name in {p.stem for p in OPERATIONS.glob("*.graphql")} else name
    url = live_gateway.base_url.replace("http", "ws", 1) + "/graphql"
    async with TransportWsClient.connect(url, {"Authorization": f"Bearer {token}"}) as ws:
        await ws.subscribe(text, {variable: sid, "after": None})
        await asyncio.sleep(0.3)  # without `after` a subscription starts from now: let it start before the trigger
        await trigger()
        message = await ws.next(10)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        first = next(iter(message["payload"]["data"].values()))
    produced = await trigger()
    replayed = await events_after(live_gateway, text, {variable: sid, "after": first["cursor"]}, token, produced)
    cursors = [int(event["cursor"]) for event in replayed]
    assert cursors == sorted(set(cursors)) and cursors[0] > int(first["cursor"])


def test_every_documented_operation_is_run_here():
    documented = {path.stem for path in OPERATIONS.glob("*.graphql")}
    assert documented == set(RUNNERS), f"operations without a test: {documented - set(RUNNERS)}"


async def run_chat_screen(gw, token):
    data = await query(gw, document("chat-screen"), {"sid": gw.conversation("order-1042")}, token)
    assert len(data["conversation"]["messages"]["edges"]) == 50


async def run_inbox_rollup(gw, token):
    data = await query(gw, document("inbox-rollup"), {}, token)
    rollups = [edge["node"]["rollup"] for edge in data["conversations"]["edges"]]
    assert rollups and all(r["messages"] <= r["window"] == 20 for r in rollups)


async def run_failed_messages(gw, token):
    data = await query(gw, document("failed-messages"), {"sid": gw.conversation("order-1042")}, token)
    rollup = data["conversation"]["rollup"]
    assert rollup["failed"] and len(rollup["failed"]) == rollup["ticks"]["failed"]
    for message in rollup["failed"]:
        assert message["ticks"] == "FAILED"
        assert any(r["error"] and r["error"]["description"] for r in message["recipients"])


async def run_resend_message(gw, token):
    sid = gw.conversation("order-1042")
    failed = (await query(gw, document("failed-messages"), {"sid": sid}, token))["conversation"]["rollup"]["failed"]
    # An Access Token resends its own messages, and only those a resend may help (a retryable error for someone).
    original = next(
        m
        for m in failed
        if not m["resentAs"]
        and m["author"] == "agent.alice"
        and any(r["error"] is None or r["error"]["retryable"] for r in m["recipients"] if r["status"] == "FAILED")
    )
    data = await query(gw, document("resend-message"), {"conversationSid": sid, "messageSid": original["sid"]}, token)
    assert data["resendMessage"]["resendOf"] == {"sid": original["sid"]}
    assert data["resendMessage"]["body"] == original["body"]


def _new_message_trigger(gw, *, author: str = "agent.alice", steps: bool = True):
    async def trigger() -> int:
        store, simulator = gw.store, gw.env.emulator.state.simulator
        store.create_message(gw.conversation("order-1042"), author=author, body="documented operation")
        if steps:
            await simulator.advance_all()
        return 5 if author == "agent.alice" else 1  # alice's message: 5 receipt changes; a customer's: 1 read

    return trigger


async def run_delivery_updates(gw, token):
    await check_subscription(gw, "delivery-updates", "sid", _new_message_trigger(gw), token)


async def run_read_horizon_updates(gw, token):
    gw.env.emulator.state.config.chat_read_rate = 1.0  # agent.alice reads every customer message
    await check_subscription(gw, "read-horizon-updates", "sid", _new_message_trigger(gw, author="+15551230001"), token)


async def run_message_events(gw, token):
    async def trigger() -> int:
        gw.store.create_message(gw.conversation("order-1042"), author="agent.alice", body="documented operation")
        return 1

    await check_subscription(gw, "message-events", "sid", trigger, token)


async def deliveries_with_failures(gw) -> list:
    """One message of alice to order-1042's SMS and WhatsApp recipients, every receipt failing or undelivered, its
    whole life reported to the gateway and applied; the emulator's receipts of it."""
    state = gw.env.emulator.state
    state.config.failure_rate = 1.0
    try:
        _, receipts = gw.store.create_message(gw.conversation("order-1042"), author="agent.alice", body="will fail")
        await state.simulator.advance_all()
    finally:
        state.config.failure_rate = 0.0
    await gw.env.gateway.ingest.drain()
    return receipts


def today() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}


async def refused_to_participants(gw, name: str, variables: dict, token: str) -> None:
    body = await answer(gw, document(name), variables, token)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body


async def run_delivery_report(gw, token):
    receipts = await deliveries_with_failures(gw)
    report = (await query(gw, document("delivery-report"), today(), gw.api_key))["deliveryReport"]
    assert report["serviceSid"] == gw.env.emulator.state.default_service_sid
    assert report["total"] == sum(len(r.reached) for r in receipts)  # every status each receipt took
    failures = [row for row in report["rows"] if row["status"] in ("FAILED", "UNDELIVERED")]
    assert failures and all(row["errorCode"] and row["error"]["description"] for row in failures)
    await refused_to_participants(gw, "delivery-report", today(), token)


async def run_failed_messages_report(gw, token):
    receipts = await deliveries_with_failures(gw)
    data = await query(gw, document("failed-messages-report"), {**today(), "first": 1}, gw.api_key)
    first = data["failedMessages"]
    assert len(first["edges"]) == 1 and first["pageInfo"]["hasNextPage"]
    rest = await query(
        gw, document("failed-messages-report"), {**today(), "after": first["pageInfo"]["endCursor"]}, gw.api_key
    )
    nodes = [edge["node"] for edge in first["edges"] + rest["failedMessages"]["edges"]]
    assert len(nodes) == len(receipts) > 2 and {n["recipient"]["channel"] for n in nodes} == {"SMS", "WHATSAPP"}
    for node in nodes:
        assert node["conversation"]["uniqueName"] == "order-1042" and node["message"]["body"] == "will fail"
        assert node["error"]["description"] and node["recipient"]["participant"]["address"]
    await refused_to_participants(gw, "failed-messages-report", today(), token)


async def run_service_delivery_updates(gw, token, text: str | None = None):
    """Live from now, then a resume by cursor replays exactly what followed, across the service's conversations."""
    text = text or document("service-delivery-updates")
    url = gw.base_url.replace("http", "ws", 1) + "/graphql"

    async def failures() -> int:  # every receipt of a new message fails: one event each
        return len(await deliveries_with_failures(gw))

    trigger = failures if "statuses: [" in text else _new_message_trigger(gw)  # a filtered example follows failures
    async with TransportWsClient.connect(url, {"Authorization": f"Bearer {gw.api_key}"}) as ws:
        await ws.subscribe(text, {"after": None})
        await asyncio.sleep(0.3)  # without `after` a subscription starts from now: let it start before the trigger
        await trigger()
        message = await ws.next(10)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        first = message["payload"]["data"]["serviceDeliveryUpdates"]
        assert first["conversationSid"] == gw.conversation("order-1042") and first["message"]["ticks"]
    produced = await trigger()
    replayed = await events_after(gw, text, {"after": first["cursor"]}, gw.api_key, produced)
    cursors = [int(event["cursor"]) for event in replayed]
    assert cursors == sorted(set(cursors)) and cursors[0] > int(first["cursor"])
    async with TransportWsClient.connect(url, {"Authorization": f"Bearer {token}"}) as ws:
        await ws.subscribe(text, {"after": None})
        refused = await ws.next(10)
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"], refused


RUNNERS = {
    "chat-screen": run_chat_screen,
    "inbox-rollup": run_inbox_rollup,
    "failed-messages": run_failed_messages,
    "resend-message": run_resend_message,
    "delivery-updates": run_delivery_updates,
    "read-horizon-updates": run_read_horizon_updates,
    "message-events": run_message_events,
    "delivery-report": run_delivery_report,
    "failed-messages-report": run_failed_messages_report,
    "service-delivery-updates": run_service_delivery_updates,
}


@pytest.mark.parametrize("name", sorted(RUNNERS))
async def test_documented_operation_runs_against_a_live_gateway(name, live_gateway):
    await RUNNERS[name](live_gateway, live_gateway.access_token("agent.alice"))


def readme_examples() -> list[str]:
    return re.findall(r"```graphql\n(.*?)```", README, flags=re.S)


async def test_readme_graphql_examples_run_against_a_live_gateway(live_gateway):
    token = live_gateway.access_token("agent.alice")
    examples = readme_examples()
    assert len(examples) >= 2
    for example in examples:
        if "serviceDeliveryUpdates" in example:  # for internal services: the service-wide stream
            await run_service_delivery_updates(live_gateway, token, example)
        elif "deliveryReport" in example:  # for internal services: the reports
            receipts = await deliveries_with_failures(live_gateway)
            data = await query(live_gateway, example, today(), live_gateway.api_key)
            failed = [edge["node"] for edge in data["failedMessages"]["edges"]]
            assert data["deliveryReport"]["total"] >= sum(len(r.reached) for r in receipts)
            assert failed and all(node["message"]["body"] for node in failed)
        elif example.lstrip().startswith("subscription"):
            variable = re.search(r"\(\$(\w+): String!", example).group(1)
            await check_subscription(live_gateway, example, variable, _new_message_trigger(live_gateway), token)
        else:
            variable = re.search(r"\(\$(\w+): String!", example).group(1)
            data = await query(live_gateway, example, {variable: live_gateway.conversation("order-1042")}, token)
            assert data["conversation"]["messages"]["edges"]
