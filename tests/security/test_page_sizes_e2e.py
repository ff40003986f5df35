"""Page sizes and the upstream-cost ceiling end to end: one page-size rule for the estimate and the resolvers,
whatever DELIVERY_GATEWAY_MAX_PAGE_SIZE says, and an estimate made on the values execution will use.

The gateway as deployed (`create_app` on a real socket) over the emulator, so a window really walks Twilio's pages.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.app_support import GatewayOnEmulator, gateway_on_emulator

API_KEY = "page-size-key"
MESSAGES = "query($c: String!, $n: Int, $l: Int) { conversation(sid: $c) { messages(first: $n, last: $l) { edges { node { index } } } } }"  # noqa: E501
CONVERSATIONS = "query($n: Int) { conversations(first: $n) { edges { node { sid } } pageInfo { hasNextPage } } }"
# The issue's own example: a page of conversations, each rolling up a window of messages.
ROLLUPS = "query($a: Int, $w: Int!) { conversations(first: $a) { edges { node { rollup(window: $w) { messages } } } } }"
ROLLUPS_DEFAULTED = "query($a: Int = 100, $w: Int! = 200) { conversations(first: $a) { edges { node { rollup(window: $w) { messages } } } } }"  # noqa: E501


async def run(gw: GatewayOnEmulator, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert response.status_code == 200, response.text
    return response.json()


def code(body: dict[str, Any]) -> str | None:
    return body["errors"][0]["extensions"]["code"] if body.get("errors") else None


def seed(gw: GatewayOnEmulator, conversations: int, messages: int) -> str:
    store = gw.emulator.state.store
    busy = store.create_conversation(friendly_name="busy")
    store.create_participant(busy.sid, identity="alice")
    for i in range(messages):
        store.create_message(busy.sid, author="alice", body=f"m{i}")
    for i in range(conversations - 1):
        store.create_conversation(friendly_name=f"c{i}")
    return busy.sid


@pytest.mark.timeout(120)
async def test_a_maximum_above_100_serves_pages_above_100() -> None:
    settings = {"DELIVERY_GATEWAY_API_KEYS": API_KEY, "DELIVERY_GATEWAY_MAX_PAGE_SIZE": 150}
    async with gateway_on_emulator(emulator={"seed_data": False, "simulate": False}, **settings) as gw:
        busy = seed(gw, conversations=160, messages=160)
        forward = await run(gw, MESSAGES, {"c": busy, "n": 150})
        assert [e["node"]["index"] for e in forward["data"]["conversation"]["messages"]["edges"]] == list(range(150))
        backward = await run(gw, MESSAGES, {"c": busy, "l": 150.0})  # a float Int, as JSON clients send them
        assert [e["node"]["index"] for e in backward["data"]["conversation"]["messages"]["edges"]] == list(
            range(10, 160)
        )
        listed = await run(gw, CONVERSATIONS, {"n": 150})
        assert len(listed["data"]["conversations"]["edges"]) == 150
        assert listed["data"]["conversations"]["pageInfo"]["hasNextPage"] is True
        assert code(await run(gw, MESSAGES, {"c": busy, "n": 151})) == "BAD_USER_INPUT"


@pytest.mark.timeout(120)
async def test_a_maximum_below_100_bounds_every_page_and_default() -> None:
    settings = {"DELIVERY_GATEWAY_API_KEYS": API_KEY, "DELIVERY_GATEWAY_MAX_PAGE_SIZE": 20}
    async with gateway_on_emulator(emulator={"seed_data": False, "simulate": False}, **settings) as gw:
        busy = seed(gw, conversations=30, messages=60)
        calls = gw.gateway.services.upstream.calls
        with calls.capture() as seen:
            for variables in ({"n": 21}, {"l": 21}, {"n": 21.0}, {"n": 100}):
                refused = await run(gw, MESSAGES, {"c": busy, **variables})
                assert code(refused) == "BAD_USER_INPUT" and "between 0 and 20" in refused["errors"][0]["message"]
            assert code(await run(gw, CONVERSATIONS, {"n": 21})) == "BAD_USER_INPUT"
        assert seen.count() == 0, "refused before any resolver ran"
        latest = await run(gw, MESSAGES, {"c": busy})  # no size given: the default page, within the maximum
        assert [e["node"]["index"] for e in latest["data"]["conversation"]["messages"]["edges"]] == list(range(40, 60))
        assert len((await run(gw, CONVERSATIONS))["data"]["conversations"]["edges"]) == 20
        rollup = await run(
            gw, "query($c: String!) { conversation(sid: $c) { rollup(window: 50) { messages } } }", {"c": busy}
        )
        assert rollup["data"]["conversation"]["rollup"]["messages"] == 50  # read in pages of at most 20


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (ROLLUPS, {"a": 100, "w": 200}),
        (ROLLUPS, {"a": 100.0, "w": 200.0}),  # graphql-core coerces 100.0 to the Int 100
        (ROLLUPS_DEFAULTED, None),  # left out: the operation's defaults apply
        (ROLLUPS_DEFAULTED, {"w": 200.0}),
    ],
)
async def test_the_cost_ceiling_reads_coerced_and_defaulted_variables(query: str, variables: dict | None) -> None:
    async with gateway_on_emulator(
        emulator={"seed_data": False, "simulate": False}, DELIVERY_GATEWAY_API_KEYS=API_KEY
    ) as gw:
        seed(gw, conversations=3, messages=3)
        calls = gw.gateway.services.upstream.calls
        with calls.capture() as seen:
            refused = await run(gw, query, variables)
        assert code(refused) == "QUERY_TOO_COMPLEX", refused
        assert refused["errors"][0]["extensions"]["cost"] > 20_000  # 100 conversations x 200 messages' receipts
        assert seen.count() == 0
        small = await run(gw, query, {"a": 2.0, "w": 3.0})
        assert small.get("errors") is None and len(small["data"]["conversations"]["edges"]) == 2
