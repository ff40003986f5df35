"""End to end on the gateway's real GraphQL app (real schema, resolvers, authorize_conversation) behind the
security pieces, wired as app.py should wire them; upstream is the GraphQL suite's in-memory fake.

Covers HTTP and WebSocket (a query over graphql-transport-ws) on a real socket; never reaches Twilio.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from delivery_gateway.auth import AuthMiddleware
from delivery_gateway.context import GatewayServices
from delivery_gateway.graphql_app import create_graphql_app
from delivery_gateway.http_guards import guard_middleware
from tests.graphql_api.fake_upstream import FakeConversations
from tests.graphql_api.gql_support import build_chat
from tests.security.conftest import API_KEY, make_settings, mint

QUERY = "query($s: String!) { conversation(sid: $s) { sid friendlyName participants { identity } } }"


def gateway(fake: FakeConversations, **overrides) -> Starlette:
    settings = make_settings(**overrides)
    services = GatewayServices(settings=settings, upstream=fake)
    graphql = AuthMiddleware.from_settings(create_graphql_app(services), settings)
    return Starlette(
        routes=[Route("/graphql", graphql, methods=["GET", "POST"]), WebSocketRoute("/graphql", graphql)],
        middleware=guard_middleware(settings, webhook_paths=["/webhooks"]),
    )


@pytest.fixture
def world():
    fake = FakeConversations()
    conv, *_ = build_chat(fake, messages=3)  # alice, bob, an SMS binding
    other = fake.add_conversation("mallory's secret chat")
    fake.add_chat(other, "mallory")
    return fake, conv.record.sid, other.record.sid


async def post(app, body: dict, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        return await client.post("/graphql", json=body, headers=headers)


async def test_participant_reads_own_conversation_stranger_cannot(world) -> None:
    fake, conv, other = world
    app = gateway(fake)
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
    app = gateway(fake)
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
    response = await post(gateway(fake), {"query": QUERY, "variables": {"s": conv}}, None)
    assert response.status_code == 401 and fake.calls.total() == 0


@settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=st.text(max_size=40) | st.from_regex(r"\A(CH|IS|AC)[0-9a-f]{32}\Z"))
async def test_random_sids_as_a_participant(world, sid: str) -> None:
    fake, conv, _ = world
    response = await post(gateway(fake), {"query": QUERY, "variables": {"s": sid}}, mint("alice"))
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
    host = await serve(gateway(fake))
    own = await ws_query(host, mint("alice"), conv)
    assert own[0]["payload"]["data"]["conversation"]["sid"] == conv
    denied = await ws_query(host, mint("alice"), other)
    assert denied[0]["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "mallory" not in json.dumps(denied)


def _hardened_schema(settings):
    """The real query root with the extension list SECURITY.md asks schema.build_schema to use."""
    from strawberry.extensions import ParserCache, ValidationCache

    from delivery_gateway.limits import limit_extensions
    from delivery_gateway.schema.errors import GatewaySchema
    from delivery_gateway.schema.query import Query

    return GatewaySchema(
        query=Query,
        extensions=[*limit_extensions(settings), lambda: ParserCache(256), lambda: ValidationCache(256)],
    )


async def _execute(schema, services, query: str, variables: dict | None = None):
    from delivery_gateway.context import RequestContext
    from delivery_gateway.kernel.callers import Caller, CallerKind

    context = RequestContext.create(services, Caller(CallerKind.INTERNAL, identity="test"))
    return await schema.execute(query, variables, context_value=context)


async def test_recommended_extension_list_on_the_real_schema(world) -> None:
    fake, conv, _ = world
    settings = make_settings(DELIVERY_GATEWAY_MAX_TOKENS=100, DELIVERY_GATEWAY_INTROSPECTION=False)
    schema, services = _hardened_schema(settings), GatewayServices(settings=settings, upstream=fake)

    async def code(query: str, variables: dict | None = None) -> str:
        result = await _execute(schema, services, query, variables)
        return result.errors[0].extensions["code"]

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
    result = await _execute(schema, services, f'{{ conversation(sid: "{conv}") {{ sid }} }}')
    assert result.errors[0].message == "Internal server error"
    assert result.errors[0].extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert result.errors[0].extensions["correlationId"]


async def test_gateway_app_is_hardened(world) -> None:
    fake, conv, _ = world
    fake.fail["fetch_conversation"] = RuntimeError("secret detail hunter2")
    response = await post(gateway(fake), {"query": QUERY, "variables": {"s": conv}}, API_KEY)
    assert "hunter2" not in response.text
    assert response.json()["errors"][0]["extensions"]["correlationId"] == response.headers["x-request-id"]
