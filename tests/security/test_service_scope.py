"""Identities are per Conversation Service: an Access Token for one service reads nothing of another, by any path.

The gateway as deployed (`create_app` on a real socket) over the emulator, which keeps services apart as Twilio
does. The schema is introspected, so a root field or a Node type added later without a way in here fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant
from websockets.asyncio.client import connect

from delivery_gateway.kernel.sids import SERVICE, new_sid
from tests.app_support import GatewayOnEmulator, gateway_on_emulator

KEY, SECRET = "SK" + "ab" * 16, "k" * 40
API_KEY = "scope-internal-key"
SECRETS = ("victim chat", "the secret body", "bob-the-victim")  # nothing of these may reach the attacker

ROOT_TYPES = (
    "{ __schema { queryType { fields { name args { name } } } mutationType { fields { name args { name } } } "
    'subscriptionType { fields { name args { name } } } } node: __type(name: "Node") { possibleTypes { name } } }'
)


def token(account: str, identity: str, service: str | None) -> str:
    grant = ChatGrant(service_sid=service) if service else ChatGrant()
    access = AccessToken(account, KEY, SECRET, identity=identity, ttl=600)
    access.add_grant(grant)
    return access.to_jwt()


def global_id(type_name: str, *parts: str) -> str:
    return base64.b64encode(f"{type_name}:{'/'.join(parts)}".encode()).decode()


_NOW = datetime.now(UTC)
WINDOW = f'since: "{(_NOW - timedelta(days=1)).isoformat()}", until: "{(_NOW + timedelta(days=1)).isoformat()}"'
FAILED = "conversation {{ friendlyName }} message {{ body }} recipient {{ participant {{ identity }} }}"

# How to name the victim's conversation through each root field. A field missing here fails the test.
OPERATIONS: dict[tuple[str, str], str] = {
    ("query", "conversation"): "conversation(sid: $c{svc}) {{ sid friendlyName participants {{ identity }} }}",
    ("query", "conversations"): "conversations(first: 50{svc}) {{ edges {{ node {{ sid friendlyName }} }} }}",
    ("query", "message"): "message(conversationSid: $c, sid: $m{svc}) {{ sid body author }}",
    ("query", "node"): "node(id: $id) {{ id ... on Conversation {{ friendlyName }} ... on Message {{ body }} "
    "... on Participant {{ identity }} }}",
    ("mutation", "resendMessage"): "resendMessage(conversationSid: $c, messageSid: $m{svc}) {{ sid body }}",
    ("subscription", "deliveryUpdates"): "deliveryUpdates(conversationSid: $c{svc}) {{ cursor }}",
    ("subscription", "readHorizonUpdates"): "readHorizonUpdates(conversationSid: $c{svc}) {{ cursor }}",
    ("subscription", "messageEvents"): "messageEvents(conversationSid: $c{svc}) {{ cursor message {{ body }} }}",
    # Service-wide reads: the victim's service as a whole (API keys only, whatever service is named).
    ("query", "deliveryReport"): f"deliveryReport({WINDOW}{{svc}}) {{{{ total rows {{{{ count }}}} }}}}",
    ("query", "failedMessages"): f"failedMessages({WINDOW}{{svc}}) {{{{ edges {{{{ node {{{{ {FAILED} }}}} }}}} }}}}",
    ("subscription", "serviceDeliveryUpdates"): (
        'serviceDeliveryUpdates(after: "0"{svc}) {{ cursor conversationSid message {{ body }} }}'
    ),
}
VARIABLES = "($c: String!, $m: String!, $id: ID!, $s: String)"


def document(kind: str, field: str, with_service: bool) -> str:
    body = OPERATIONS[(kind, field)].format(svc=", serviceSid: $s" if with_service else "")
    used = [v for v in ("$c", "$m", "$id", "$s") if v in body]
    declared = ", ".join(d for d in VARIABLES.strip("()").split(", ") if d.split(":")[0] in used)
    return f"{kind} Attack{('(' + declared + ')') if declared else ''} {{ {body} }}"


def values_for(doc: str, variables: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in variables.items() if f"${name}" in doc}


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[tuple[GatewayOnEmulator, dict[str, str]]]:
    async with gateway_on_emulator(
        emulator={"seed_data": False, "simulate": False},
        DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{KEY}:{SECRET}",
        DELIVERY_GATEWAY_API_KEYS=API_KEY,
    ) as gw:
        store = gw.emulator.state.store
        default = store.default_service.sid
        other = store.create_service("another service").sid
        victim = store.create_conversation(friendly_name="victim chat")  # in the default service
        store.create_participant(victim.sid, identity="alice")
        bob = store.create_participant(victim.sid, identity="bob-the-victim")
        store.create_participant(victim.sid, address="+15551230001", proxy_address="+15017122661")
        message, receipts = store.create_message(victim.sid, author="alice", body="the secret body")
        receipts[0].advance("failed", 30003, message.date_created)
        own = store.create_conversation(service_sid=other, friendly_name="alice elsewhere")
        store.create_participant(own.sid, identity="alice")  # alice of the other service: another person
        yield (
            gw,
            {
                "default": default,
                "other": other,
                "missing": new_sid(SERVICE),
                "c": victim.sid,
                "m": message.sid,
                "p": bob.sid,
            },
        )


async def post(gw: GatewayOnEmulator, bearer: str, doc: str, variables: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
        response = await client.post(
            "/graphql",
            json={"query": doc, "variables": values_for(doc, variables)},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    assert response.status_code == 200, response.text
    return response.json()


async def subscribe(gw: GatewayOnEmulator, bearer: str, doc: str, variables: dict[str, str]) -> list[dict]:
    """The socket's messages until the subscription ends, or until it has said nothing for a second."""
    async with connect(gw.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        payload = {"query": doc, "variables": values_for(doc, variables)}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        messages: list[dict] = []
        with contextlib.suppress(TimeoutError):
            while not messages or messages[-1]["type"] not in ("complete", "error"):
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 1)))
        return messages


def attempts(schema: dict, ids: dict[str, str]) -> list[tuple[str, str, str, dict[str, str]]]:
    """(kind, field, document, variables) for every root field and every Node type, through every service."""
    out = []
    roots = {
        "query": schema["queryType"],
        "mutation": schema["mutationType"],
        "subscription": schema["subscriptionType"],
    }
    for kind, root in roots.items():
        for field in root["fields"]:
            assert (kind, field["name"]) in OPERATIONS, f"{kind} field {field['name']} is not attacked by this test"
            if field["name"] == "node":
                continue
            accepts_service = any(a["name"] == "serviceSid" for a in field["args"])
            services = (None, ids["default"], ids["other"], ids["missing"]) if accepts_service else (None,)
            for service in services:
                doc = document(kind, field["name"], service is not None)
                out.append((kind, field["name"], doc, {**ids, "s": service or ""}))
    return out


def node_attempts(node_types: list[str], ids: dict[str, str]) -> list[tuple[str, str, str, dict[str, str]]]:
    parts = {"Conversation": (ids["c"],), "Message": (ids["c"], ids["m"]), "Participant": (ids["c"], ids["p"])}
    assert set(node_types) == set(parts), "a Node type this test does not attack"
    doc = document("query", "node", False)
    return [
        ("query", "node", doc, {**ids, "id": global_id(type_name, scope, *parts[type_name])})
        for type_name in node_types
        for scope in ("-", ids["default"], ids["other"], ids["missing"])
    ]


@pytest.mark.timeout(180)
async def test_a_token_for_another_service_reads_nothing_by_any_path() -> None:
    async with world() as (gw, ids):
        introspected = await post(gw, API_KEY, ROOT_TYPES, {})
        schema = introspected["data"]["__schema"]
        node_types = [t["name"] for t in introspected["data"]["node"]["possibleTypes"]]
        everything = attempts(schema, ids) + node_attempts(node_types, ids)
        account = gw.settings.twilio_account_sid
        assert account

        # The control: alice of the default service reads her conversation by these very operations.
        own = token(account, "alice", ids["default"])
        control = await post(gw, own, document("query", "message", False), ids)
        assert control["data"]["message"]["body"] == "the secret body"
        for _, _, doc, variables in node_attempts(node_types, ids)[:2]:
            assert (await post(gw, own, doc, variables))["data"]["node"], doc

        store = gw.emulator.state.store
        messages_before = len(store.messages[ids["c"]])
        calls = gw.gateway.services.upstream.calls
        for service in ("other", "missing"):
            attacker = token(account, "alice", ids[service])
            for kind, field, doc, variables in everything:
                with calls.capture() as seen:
                    if kind == "subscription":
                        received = await subscribe(gw, attacker, doc, variables)
                        text = json.dumps(received)
                        errors = [e for m in received for e in (m.get("payload") or {}).get("errors", [])]
                        if not errors and received and received[0]["type"] == "error":
                            errors = received[0]["payload"]
                        assert not any(m["type"] == "next" and m["payload"].get("data") for m in received), text
                    else:
                        body = await post(gw, attacker, doc, variables)
                        text = json.dumps(body)
                        errors = body.get("errors") or []
                        if field != "conversations":
                            assert (body.get("data") or {}).get(field) is None, (service, doc, variables, text)
                assert not any(secret in text for secret in SECRETS), text
                if field == "conversations":  # lists the token's own service: alice's chat there, never the victim
                    assert ids["c"] not in text, text
                    continue
                assert errors and {e["extensions"]["code"] for e in errors} == {"FORBIDDEN"}, (doc, variables, text)
                # Nothing was read: every upstream call the attempt made was refused by Twilio (404).
                assert not [c for c in seen.by_call() if c[2].startswith("2")], (doc, variables, seen)
        assert len(store.messages[ids["c"]]) == messages_before  # and nothing was sent


async def test_a_token_without_a_service_is_scoped_to_the_default_service() -> None:
    async with world() as (gw, ids):
        account = gw.settings.twilio_account_sid
        assert account
        alice = token(account, "alice", None)  # how most apps mint them: ChatGrant() without service_sid
        query = "query($c: String!) { conversation(sid: $c) { sid serviceSid friendlyName } }"
        own = await post(gw, alice, query, ids)
        assert own["data"]["conversation"] == {
            "sid": ids["c"],
            "serviceSid": ids["default"],
            "friendlyName": "victim chat",
        }
        elsewhere = "query($s: String) { conversations(serviceSid: $s) { edges { node { sid } } } }"
        refused = await post(gw, alice, elsewhere, {"s": ids["other"]})
        assert refused["data"]["conversations"] is None
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        listed = await post(gw, alice, "{ conversations { edges { node { sid } } } }", {})
        assert [e["node"]["sid"] for e in listed["data"]["conversations"]["edges"]] == [ids["c"]]
        # The default service is learnt once (Twilio's Configuration resource) and then served from the cache.
        calls = gw.gateway.services.upstream.calls
        assert calls.count("/v1/Configuration") == 1
