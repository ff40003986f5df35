"""The lead's `create_app` as deployed: auth, guards and limits in front of the real routes, on a real socket.

Upstream is the GraphQL suite's in-memory fake; backends are in-memory. Never reaches Twilio.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from delivery_gateway.app import create_app
from tests.app_support import serve_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import build_chat
from tests.security.conftest import API_KEY, make_settings, mint

QUERY = "query($s: String!) { conversation(sid: $s) { sid friendlyName participants { identity } } }"


@pytest.fixture
async def deployed():
    fake = FakeConversations()
    conv, *_ = build_chat(fake, messages=2)
    other = fake.add_conversation("mallory's secret chat")
    fake.add_chat(other, "mallory")
    settings = make_settings(
        DELIVERY_GATEWAY_STORE_URL="memory://",
        TWILIO_AUTH_TOKEN="app-wiring-auth-token",
        DELIVERY_GATEWAY_MAX_BODY_BYTES=4096,
        DELIVERY_GATEWAY_MAX_WEBHOOK_BYTES=2048,
    )
    async with serve_app(create_app(settings, upstream=fake)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            yield client, fake, conv.record.sid, other.record.sid


async def graphql(client: httpx.AsyncClient, token: str | None, sid: str, query: str = QUERY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json={"query": query, "variables": {"s": sid}}, headers=headers)


async def test_http_access_rules(deployed) -> None:
    client, _, own, other = deployed
    unauthenticated = await graphql(client, None, own)
    assert unauthenticated.status_code == 401 and "Bearer" in unauthenticated.headers["www-authenticate"]
    assert (await graphql(client, mint("alice"), own)).json()["data"]["conversation"]["sid"] == own
    denied = await graphql(client, mint("alice"), other)
    assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN" and "mallory" not in denied.text
    assert (await graphql(client, API_KEY, other)).json()["data"]["conversation"]["sid"] == other
    assert denied.headers["x-request-id"]


async def test_open_routes_and_size_limits(deployed) -> None:
    client, *_ = deployed
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.post("/graphql", content=b"{" + b" " * 5000 + b"}")).status_code == 413
    assert (await client.post("/webhooks/twilio", content=b"a" * 3000)).status_code == 413
    small = await client.post("/webhooks/twilio", data={"EventType": "onDeliveryUpdated"})
    assert small.status_code == 403  # unsigned: refused by the webhook route itself


async def test_websocket_access_rules(deployed) -> None:
    client, _, own, other = deployed
    url = str(client.base_url).replace("http", "ws", 1) + "/graphql"

    async def run(payload: dict, sid: str) -> dict | int:
        async with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            try:
                ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except ConnectionClosed:
                return ws.close_code
            assert ack["type"] == "connection_ack"
            body = {"query": QUERY, "variables": {"s": sid}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": body}))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    assert await run({}, own) == 4401
    assert await run({"Authorization": "Bearer forged"}, own) == 4401
    assert (await run({"Authorization": f"Bearer {mint('alice')}"}, own))["payload"]["data"]["conversation"]
    denied = await run({"Authorization": f"Bearer {mint('alice')}"}, other)
    assert denied["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    with pytest.raises(InvalidStatus):
        async with connect(url, subprotocols=["graphql-transport-ws"], origin="https://evil.example"):
            pass


async def test_limits_and_masking_in_the_deployed_app(deployed) -> None:
    client, fake, own, _ = deployed
    aliases = " ".join(f"a{i}: conversation(sid: $s) {{ rollup(window: 200) {{ window }} }}" for i in range(6))
    fake.calls.clear()
    expensive = await graphql(client, API_KEY, own, f"query($s: String!) {{ {aliases} }}")
    assert expensive.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert fake.calls.total() == 0
    fake.fail["fetch_conversation"] = RuntimeError("secret detail hunter2")
    masked = await graphql(client, API_KEY, own)
    assert "hunter2" not in masked.text
    assert masked.json()["errors"][0]["extensions"]["correlationId"] == masked.headers["x-request-id"]


async def test_configured_and_demo_origins_can_open_websockets() -> None:
    for overrides, origin in (
        ({"DELIVERY_GATEWAY_ALLOWED_ORIGINS": "https://app.example"}, "https://app.example"),
        ({"DELIVERY_GATEWAY_DEMO_MODE": True}, "http://localhost:5173"),
    ):
        settings = make_settings(DELIVERY_GATEWAY_STORE_URL="memory://", **overrides)
        async with serve_app(create_app(settings, upstream=FakeConversations())) as base_url:
            url = base_url.replace("http", "ws", 1) + "/graphql"
            async with connect(url, subprotocols=["graphql-transport-ws"], origin=origin) as ws:
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {API_KEY}"}}
                await ws.send(json.dumps(init))
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
