"""Failing dependencies, end to end: 429 storms, 5xx bursts, timeouts and resets from the emulator, through the app.

Never fakes the upstream or reaches into the gateway: faults come from the emulator's knobs, effects are observed
over HTTP (GraphQL answers, /metrics) and in the emulator's request counter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import httpx

from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.server import serve_emulator
from tests.app_support import gateway_on_emulator

CHAT_SCREEN = """
query ChatScreen($sid: String!) {
  conversation(sid: $sid) {
    sid friendlyName
    participants { sid identity channel address }
    messages(last: 50) {
      edges { node {
        sid index ticks
        receipts { sid status participant { sid } }
        recipients { participant { sid } status }
      } }
    }
  }
}
"""

MESSAGES_ROUTE = "GET /v1/Conversations/{ConversationSid}/Messages"
PARTICIPANTS_ROUTE = "GET /v1/Conversations/{ConversationSid}/Participants"
CONVERSATION_ROUTE = "GET /v1/Conversations/{Sid}"
RECEIPTS_ROUTE = "GET /v1/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts"
RECEIPT_FIELDS = {"receipts", "recipients", "ticks"}

# Receipts are always read from Twilio (TTL 0) while the conversation, its messages and participants stay cached:
# the shape of "fetched before the burst, failing during it".
RECEIPTS_UNCACHED = {"DELIVERY_GATEWAY_TTL_RECEIPTS": 0, "DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL": 0}


def quiet_conversation(emulator, messages: int) -> str:
    """A conversation of one chat and two SMS participants with `messages` chat messages, each with two receipts
    that the simulator never advances (so every read sees the same data)."""
    store = emulator.state.store
    conversation = store.create_conversation(friendly_name=f"resilience-{messages}")
    store.create_participant(conversation.sid, identity="agent")
    store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15559990000")
    store.create_participant(conversation.sid, address="+15550000002", proxy_address="+15559990000")
    for index in range(messages):
        store.create_message(conversation.sid, author="agent", body=f"message {index}", notify=False)
    return conversation.sid


def expected_receipts(emulator, conversation_sid: str) -> dict[str, set[tuple[str, str]]]:
    """message SID -> {(receipt SID, status)} as the emulator holds them."""
    store = emulator.state.store
    return {sid: {(r.sid, r.status) for r in store.receipts_of(sid)} for sid in store.messages[conversation_sid]}


def seen_receipts(body: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    edges = body["data"]["conversation"]["messages"]["edges"]
    return {e["node"]["sid"]: {(r["sid"], r["status"].lower()) for r in e["node"]["receipts"]} for e in edges}


async def chat_screen(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": CHAT_SCREEN, "variables": {"sid": sid}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "data" in body, body
    return body


async def conversation_only(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    query = "query($sid: String!) { conversation(sid: $sid) { sid friendlyName } }"
    response = await client.post("/graphql", json={"query": query, "variables": {"sid": sid}})
    assert response.status_code == 200, response.text
    return response.json()


def error_codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors", [])}


def circuit_open(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("delivery_gateway_upstream_circuit_open"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("delivery_gateway_upstream_circuit_open not exported")


async def test_emulator_resets_connections_mid_body_seeded_and_tracks_in_flight():
    async def outcomes(seed: int) -> tuple[list[str], int]:
        config = EmulatorConfig(seed=seed, seed_data=True, simulate=False, connection_reset_rate=0.5, latency=0.05)
        async with (
            serve_emulator(config) as running,
            aiohttp.ClientSession(
                headers={"Authorization": aiohttp.encode_basic_auth(config.account_sid, config.auth_token)}
            ) as http,
        ):

            async def get() -> str:
                try:
                    async with http.get(f"{running.base_url}/v1/Conversations") as response:
                        await response.json()
                        return str(response.status)
                except aiohttp.ClientPayloadError:
                    return "reset"

            seen = [await get() for _ in range(16)]
            running.state.requests.reset()
            assert running.state.requests.max_in_flight == 0
            await asyncio.gather(*(get() for _ in range(5)))
            assert running.state.requests.in_flight == 0
            return seen, running.state.requests.max_in_flight

    (first, in_flight), (again, _) = await outcomes(3), await outcomes(3)
    assert first == again  # seeded like the other fault knobs
    assert set(first) == {"200", "reset"}  # a dropped connection is never an HTTP status
    assert in_flight == 5


async def test_429_storm_answers_rate_limited_with_bounded_retries():
    retries = 2
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=retries,
            emulator={"retry_after": 0},
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        warm, cold = quiet_conversation(gw.emulator, 3), quiet_conversation(gw.emulator, 3)
        await c.post(
            "/graphql", json={"query": "query($s: String!) { conversation(sid: $s) { sid } }", "variables": {"s": warm}}
        )
        state.config.rate_limit_rate = 1.0
        state.requests.reset()

        # The conversation was cached before the storm: it answers, its messages and participants do not.
        body = await chat_screen(c, warm)
        assert body["data"]["conversation"]["sid"] == warm
        assert body["data"]["conversation"]["messages"] is None
        assert body["data"]["conversation"]["participants"] is None
        assert error_codes(body) == {"UPSTREAM_RATE_LIMITED"}
        assert {tuple(e["path"]) for e in body["errors"]} == {
            ("conversation", "messages"),
            ("conversation", "participants"),
        }
        assert state.requests.snapshot() == {MESSAGES_ROUTE: 1 + retries, PARTICIPANTS_ROUTE: 1 + retries}

        # Nothing cached: the first round's three calls (the conversation, its participants and its messages page
        # go out together) are each retried exactly max_retries times.
        state.requests.reset()
        body = await chat_screen(c, cold)
        assert body["data"] == {"conversation": None}
        assert error_codes(body) == {"UPSTREAM_RATE_LIMITED"}
        assert state.requests.snapshot() == {
            CONVERSATION_ROUTE: 1 + retries,
            PARTICIPANTS_ROUTE: 1 + retries,
            MESSAGES_ROUTE: 1 + retries,
        }

        # 429s prove the upstream alive: the breaker stays closed, and the storm's end is seen at once.
        assert circuit_open((await c.get("/metrics")).text) == 0
        state.config.rate_limit_rate = 0.0
        body = await chat_screen(c, cold)
        assert "errors" not in body and seen_receipts(body) == expected_receipts(gw.emulator, cold)


async def test_5xx_burst_fails_only_the_uncached_branches_then_recovers():
    retries = 1
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=retries,
            DELIVERY_GATEWAY_UPSTREAM_BREAKER_FAILURES=1000,  # this test is about partial data, not the breaker
            **RECEIPTS_UNCACHED,
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        messages = 4
        sid = quiet_conversation(gw.emulator, messages)
        before = await chat_screen(c, sid)
        assert "errors" not in before

        state.config.server_error_rate = 1.0
        state.requests.reset()
        during = await chat_screen(c, sid)
        conversation = during["data"]["conversation"]
        assert conversation["friendlyName"] == before["data"]["conversation"]["friendlyName"]
        assert conversation["participants"] == before["data"]["conversation"]["participants"]
        edges = conversation["messages"]["edges"]
        assert [e["node"]["sid"] for e in edges] == [
            e["node"]["sid"] for e in before["data"]["conversation"]["messages"]["edges"]
        ]
        assert all(e["node"][field] is None for e in edges for field in RECEIPT_FIELDS)
        assert error_codes(during) == {"UPSTREAM_UNAVAILABLE"}
        assert {e["path"][-1] for e in during["errors"]} == RECEIPT_FIELDS
        assert len(during["errors"]) == messages * len(RECEIPT_FIELDS)
        # One receipts list per message, each tried 1 + max_retries times; nothing else was asked.
        assert state.requests.snapshot() == {RECEIPTS_ROUTE: messages * (1 + retries)}

        state.config.server_error_rate = 0.0
        after = await chat_screen(c, sid)
        assert after == before


async def test_timeouts_answer_upstream_timeout_without_piling_up():
    latency, read_timeout = 0.3, 0.1
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_READ_TIMEOUT=read_timeout,
            DELIVERY_GATEWAY_UPSTREAM_BREAKER_FAILURES=1000,
            **RECEIPTS_UNCACHED,
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        messages = 10
        sid = quiet_conversation(gw.emulator, messages)
        assert "errors" not in await chat_screen(c, sid)

        state.config.latency = latency
        state.requests.reset()
        started = time.perf_counter()
        body = await chat_screen(c, sid)
        elapsed = time.perf_counter() - started
        assert body["data"]["conversation"]["messages"]["edges"]
        assert error_codes(body) == {"UPSTREAM_TIMEOUT"}
        assert {e["path"][-1] for e in body["errors"]} == RECEIPT_FIELDS
        # Read timeouts are not retried (more load does not help a slow upstream) and the calls run side by side.
        assert state.requests.snapshot() == {RECEIPTS_ROUTE: messages}
        assert elapsed < latency * messages / 2, elapsed


async def test_connection_resets_answer_unavailable_and_recover():
    retries = 1
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=retries,
            DELIVERY_GATEWAY_UPSTREAM_BREAKER_FAILURES=1000,  # this test is about retried resets, not the breaker
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        sid = quiet_conversation(gw.emulator, 3)
        state.config.connection_reset_rate = 1.0

        body = await chat_screen(c, sid)
        assert body["data"] == {"conversation": None}
        assert error_codes(body) == {"UPSTREAM_UNAVAILABLE"}
        # Resets of GETs are retried. The conversation's call is retried before the answer; the participants and
        # messages page started beside it are not waited for once the conversation failed (their retries may
        # still be on their way when the answer goes out).
        seen = state.requests.snapshot()
        assert seen[CONVERSATION_ROUTE] == 1 + retries
        assert set(seen) == {CONVERSATION_ROUTE, PARTICIPANTS_ROUTE, MESSAGES_ROUTE}
        assert all(1 <= seen[route] <= 1 + retries for route in (PARTICIPANTS_ROUTE, MESSAGES_ROUTE))

        state.config.connection_reset_rate = 0.0
        body = await chat_screen(c, sid)
        assert "errors" not in body
        assert body["data"]["conversation"]["sid"] == sid
        assert seen_receipts(body) == expected_receipts(gw.emulator, sid)


async def test_upstream_concurrency_is_bounded_and_used():
    bound = 4
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY=bound,
            emulator={"latency": 0.05},
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        messages = 24
        sid = quiet_conversation(gw.emulator, messages)
        state.requests.reset()

        body = await chat_screen(c, sid)
        assert "errors" not in body
        assert seen_receipts(body) == expected_receipts(gw.emulator, sid)
        assert all(len(receipts) == 2 for receipts in seen_receipts(body).values())
        assert state.requests.count(RECEIPTS_ROUTE) == messages
        assert state.requests.count() == 3 + messages
        assert 1 < state.requests.max_in_flight <= bound


async def test_circuit_breaker_stops_hammering_and_recovers_by_itself():
    failures, cooldown = 2, 0.3
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=1,
            DELIVERY_GATEWAY_UPSTREAM_BREAKER_FAILURES=failures,
            DELIVERY_GATEWAY_UPSTREAM_BREAKER_COOLDOWN=cooldown,
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as c,
    ):
        state = gw.emulator.state
        first, second = quiet_conversation(gw.emulator, 3), quiet_conversation(gw.emulator, 3)
        state.config.server_error_rate = 1.0
        assert circuit_open((await c.get("/metrics")).text) == 0

        # Two consecutive 503s (the call and its retry) open the breaker. (A query of the conversation alone: a
        # chat screen's first round would race three calls for the two failures.)
        body = await conversation_only(c, first)
        assert body["data"] == {"conversation": None}
        assert error_codes(body) == {"UPSTREAM_UNAVAILABLE"}
        assert state.requests.count() == failures
        assert circuit_open((await c.get("/metrics")).text) == 1

        # Open: queries still answer, coded, without a single request to the failing upstream.
        state.requests.reset()
        for sid in (first, second, first):
            body = await chat_screen(c, sid)
            assert body["data"] == {"conversation": None}
            assert error_codes(body) == {"UPSTREAM_UNAVAILABLE"}
        assert state.requests.count() == 0

        # After the cool-down one probe goes out; it fails, so the breaker re-opens without a retry going out.
        await asyncio.sleep(cooldown + 0.05)
        body = await chat_screen(c, first)
        assert error_codes(body) == {"UPSTREAM_UNAVAILABLE"}
        assert state.requests.count() == 1
        assert circuit_open((await c.get("/metrics")).text) == 1
        body = await chat_screen(c, second)
        assert error_codes(body) == {"UPSTREAM_UNAVAILABLE"}
        assert state.requests.count() == 1
        state.requests.reset()

        # The upstream heals; after the cool-down the first call is the half-open probe, and it closes the breaker.
        state.config.server_error_rate = 0.0
        await asyncio.sleep(cooldown + 0.05)
        body = await chat_screen(c, second)
        assert "errors" not in body
        assert seen_receipts(body) == expected_receipts(gw.emulator, second)
        assert state.requests.count() == 3 + 3
        assert circuit_open((await c.get("/metrics")).text) == 0
