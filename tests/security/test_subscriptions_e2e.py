"""Subscriptions of the real schema behind the auth middleware, on a real socket: a participant may follow
their own conversation, never a stranger's; the limits apply to subscriptions too.

Serves app.py's `create_app` (SQLite ledger in tmp_path) over the GraphQL suite's fake upstream; never reaches
Twilio.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from delivery_gateway.app import create_app
from tests.graphql.fake_upstream import FakeConversations
from tests.graphql.gql_support import build_chat
from tests.security.conftest import API_KEY, make_settings, mint

SUBSCRIBE = "subscription($c: String!) { deliveryUpdates(conversationSid: $c) { cursor } }"


@pytest.fixture
async def gateway(tmp_path, serve):
    fake = FakeConversations()
    conv, *_ = build_chat(fake, messages=1)
    other = fake.add_conversation("mallory's chat")
    fake.add_chat(other, "mallory")
    settings = make_settings(DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3")
    host = await serve(create_app(settings, upstream=fake))  # the deployed app: guards, auth, limits
    yield host, conv.record.sid, other.record.sid


async def follow(host: str, token: str, conversation_sid: str, query: str = SUBSCRIBE) -> list[dict]:
    """Messages for one subscription in its first half second (none: it is open and waiting for events)."""
    async with connect(f"ws://{host}/graphql", subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        payload = {"query": query, "variables": {"c": conversation_sid}}
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": payload}))
        messages: list[dict] = []
        try:
            while not messages or messages[-1]["type"] not in ("complete", "error"):
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
        except TimeoutError:
            pass
        return messages


def codes(messages: list[dict]) -> set[str]:
    out = set()
    for message in messages:
        payload = message.get("payload") or {}
        errors = payload if message["type"] == "error" else payload.get("errors")
        out |= {e["extensions"]["code"] for e in errors or []}
    return out


async def test_participant_follows_own_conversation_not_a_strangers(gateway) -> None:
    host, own, other = gateway
    assert await follow(host, mint("alice"), own) == []  # open, waiting for events
    denied = await follow(host, mint("alice"), other)
    assert codes(denied) == {"FORBIDDEN"}
    assert "mallory" not in json.dumps(denied)
    assert await follow(host, API_KEY, other) == []  # full access


async def test_bad_sids_and_limits_on_subscriptions(gateway) -> None:
    host, own, _ = gateway
    assert codes(await follow(host, mint("alice"), "CH-not-a-sid")) == {"BAD_USER_INPUT"}
    aliases = (
        "subscription($c: String!) { "
        + " ".join(f"a{i}: deliveryUpdates(conversationSid: $c) {{ cursor }}" for i in range(40))
        + " }"
    )
    assert "QUERY_TOO_COMPLEX" in codes(await follow(host, mint("alice"), own, aliases))


async def test_a_malformed_subscription_is_answered_parse_failed_on_every_transport(gateway, caplog) -> None:
    host, own, _ = gateway
    broken = "subscription($c: String!) { deliveryUpdates(conversationSid: $c"
    # graphql-transport-ws answers a document that does not parse by closing with 4400 and the syntax error.
    with pytest.raises(ConnectionClosedError) as closed:
        await follow(host, mint("alice"), own, broken)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    assert closed.value.rcvd.reason.startswith("Syntax Error: Expected Name, found <EOF>")

    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=5) as client:
        response = await client.post(
            "/graphql",
            json={"query": broken, "variables": {"c": own}},
            headers={"Authorization": f"Bearer {mint('alice')}", "Accept": "text/event-stream"},
        )
    events = [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
    ]
    assert [e["errors"][0]["extensions"]["code"] for e in events if e.get("errors")] == ["GRAPHQL_PARSE_FAILED"]
    assert not [r for r in caplog.records if r.exc_info], "a malformed document is the caller's mistake, not a crash"
