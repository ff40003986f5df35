"""End to end on the gateway as deployed (`create_app`: real schema, resolvers, authorize_conversation, the
guards and the auth middleware); upstream is the GraphQL suite's in-memory fake.

Covers HTTP and WebSocket (a query over graphql-transport-ws) on a real socket; never reaches Twilio.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import build_chat
from tests.security.conftest import API_KEY, gateway_app, mint, post

QUERY = "query($s: String!) { conversation(sid: $s) { sid friendlyName participants { identity } } }"


@pytest.fixture
def world():
    fake = FakeConversations()
    conv, *_ = build_chat(fake, messages=3)  # alice, bob, an SMS binding
    other = fake.add_conversation("mallory's secret chat")
    fake.add_chat(other, "mallory")
    return fake, conv.record.sid, other.record.sid


async def test_participant_reads_own_conversation_stranger_cannot(world) -> None:
    fake, conv, other = world
    app = gateway_app(fake)
    own = await post(app, {"query": QUERY, "variables": {"s": conv}}, mint("alice"))
    assert own.json()["data"]["conversation"]["sid"] == conv
    assert {p["identity"] for p in own.json()["data"]["conversation"]["participants"]} >= {"alice", "bob"}

    fake.calls.clear()
    denied = await post(app, {"query": QUERY, "variables": {"s": other}}, mint("alice"))
    body = denied.json()
    assert body["data"]["conversation"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "mallory" not in denied.text
    assert set(fake.calls) == {"list_participants"}  # only the access check reached upstream


async def test_stranger_by_global_id_and_missing_conversation(world) -> None:
    fake, conv, _ = world
    app = gateway_app(fake)
    own = await post(app, {"query": QUERY, "variables": {"s": conv}}, API_KEY)
    assert own.status_code == 200
    node_query = "query($s: String!) { conversation(sid: $s) { id } }"
    node_id = (await post(app, {"query": node_query, "variables": {"s": conv}}, API_KEY)).json()
    node_id = node_id["data"]["conversation"]["id"]
    by_id = {"query": "query($i: ID!) { node(id: $i) { id } }", "variables": {"i": node_id}}
    stranger = await post(app, by_id, mint("eve"))
    assert stranger.json()["data"]["node"] is None
    assert stranger.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = await post(app, {"query": QUERY, "variables": {"s": "CH" + "e" * 32}}, mint("alice"))
    assert missing.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # existence does not leak


async def test_no_credentials_is_401_even_though_the_app_alone_would_fall_back(world) -> None:
    fake, conv, _ = world
    response = await post(gateway_app(fake), {"query": QUERY, "variables": {"s": conv}}, None)
    assert response.status_code == 401 and fake.calls.total() == 0


@settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=st.text(max_size=40) | st.from_regex(r"\A(CH|IS|AC)[0-9a-f]{32}\Z"))
async def test_random_sids_as_a_participant(world, sid: str) -> None:
    fake, conv, _ = world
    response = await post(gateway_app(fake), {"query": QUERY, "variables": {"s": sid}}, mint("alice"))
    assert response.status_code == 200
    body = response.json()
    if sid != conv:
        assert body["data"]["conversation"] is None
        assert body["errors"][0]["extensions"]["code"] in {"FORBIDDEN", "BAD_USER_INPUT"}
        assert "mallory" not in response.text


async def ws_query(host: str, token: str, sid: str) -> list[dict]:
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        payload = {"query": QUERY, "variables": {"s": sid}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        messages = []
        while not messages or messages[-1]["type"] not in ("complete", "error"):
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        return messages


async def test_websocket_uses_the_init_credentials(world, serve) -> None:
    fake, conv, other = world
    host = await serve(gateway_app(fake))
    own = await ws_query(host, mint("alice"), conv)
    assert own[0]["payload"]["data"]["conversation"]["sid"] == conv
    denied = await ws_query(host, mint("alice"), other)
    assert denied[0]["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "mallory" not in json.dumps(denied)


async def test_the_schemas_extensions_code_every_rejection(world) -> None:
    fake, conv, _ = world
    app = gateway_app(fake, DELIVERY_GATEWAY_MAX_TOKENS=100, DELIVERY_GATEWAY_INTROSPECTION=False)

    async def code(query: str, variables: dict | None = None) -> str:
        response = await post(app, {"query": query, "variables": variables}, API_KEY)
        return str(response.json()["errors"][0]["extensions"]["code"])

    fake.calls.clear()
    assert await code("{ conversation( }") == "GRAPHQL_PARSE_FAILED"
    assert await code("{ " + "__typename " * 120 + "}") == "QUERY_TOO_COMPLEX"
    assert await code("{ __schema { queryType { name } } }") == "GRAPHQL_VALIDATION_FAILED"
    paged = "query($n: Int) { conversation(sid: $s) { messages(last: $n) { edges { node { sid } } } } }"
    paged = paged.replace("query($n: Int)", "query($n: Int, $s: String!)")
    assert await code(paged, {"n": 101, "s": conv}) == "BAD_USER_INPUT"
    rollup = f'conversation(sid: "{conv}") {{ rollup(window: 200) {{ window }} }}'
    rollups = " ".join(f"a{i}: {rollup}" for i in range(5))
    assert await code("{ " + rollups + " }") == "QUERY_TOO_COMPLEX"
    assert fake.calls.total() == 0, "rejected before any upstream call"

    fake.fail["fetch_conversation"] = RuntimeError("secret detail hunter2")
    response = await post(app, {"query": f'{{ conversation(sid: "{conv}") {{ sid }} }}'}, API_KEY)
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error" and "hunter2" not in response.text
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and error["extensions"]["correlationId"]


async def test_gateway_app_is_hardened(world) -> None:
    fake, conv, _ = world
    fake.fail["fetch_conversation"] = RuntimeError("secret detail hunter2")
    response = await post(gateway_app(fake), {"query": QUERY, "variables": {"s": conv}}, API_KEY)
    assert "hunter2" not in response.text
    assert response.json()["errors"][0]["extensions"]["correlationId"] == response.headers["x-request-id"]
