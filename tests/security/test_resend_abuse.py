"""resendMessage as a hostile participant would use it: only one's own messages, no `force`, bounded resends per
message and per caller (counted in the cache backend, so replicas share them), and never a message a resend
cannot help unless an API-key caller insists.

Through `create_app` over the fake upstream (in-process), over Redis for two replicas, and over the emulator for
the resent message's own webhook.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from delivery_gateway.kernel.records import DeliveryStatus as S
from tests.app_support import gateway_on_emulator
from tests.redis_support import redis_target, redis_url  # noqa: F401
from tests.security.conftest import API_KEY, CONV_ALICE, World, mint, post

RESEND = """
mutation($c: String!, $m: String!, $force: Boolean! = false) {
  resendMessage(conversationSid: $c, messageSid: $m, force: $force) { sid author }
}
"""


def failed_messages(world: World, author: str, count: int = 1, code: int = 30003) -> list[str]:
    """Messages of CONV_ALICE by `author` whose SMS receipt failed with `code`."""
    conv = world.fake.conversations[CONV_ALICE]
    writer = next(p for p in conv.participants if p.identity == author)
    sms = next(p for p in conv.participants if p.messaging_binding)
    return [
        world.fake.add_message(conv, writer, f"{author} {i}", {sms.sid: (S.FAILED, code)}).sid for i in range(count)
    ]


async def resend(app, credential: str, message: str, force: bool = False) -> dict[str, Any]:
    response = await post(
        app, {"query": RESEND, "variables": {"c": CONV_ALICE, "m": message, "force": force}}, credential
    )
    assert response.status_code == 200, response.text
    return response.json()


def code(body: dict[str, Any]) -> str | None:
    return body["errors"][0]["extensions"]["code"] if body.get("errors") else None


async def test_a_participant_resends_only_what_it_authored_and_never_forces(world: World) -> None:
    app = await world.start()
    (alices,) = failed_messages(world, "alice")
    (bobs,) = failed_messages(world, "bob")
    refused = await resend(app, mint("alice"), bobs)
    assert code(refused) == "FORBIDDEN" and "authored" in refused["errors"][0]["message"]
    assert "create_message" not in world.fake.calls
    forced = await resend(app, mint("alice"), alices, force=True)
    assert code(forced) == "FORBIDDEN" and "force" in forced["errors"][0]["message"]
    own = await resend(app, mint("alice"), alices)
    assert code(own) is None and own["data"]["resendMessage"]["author"] == "alice"
    by_key = await resend(app, API_KEY, bobs)  # API-key callers may resend anyone's, as its author
    assert code(by_key) is None and by_key["data"]["resendMessage"]["author"] == "bob"
    assert world.fake.calls["create_message"] == 2


async def test_resends_are_limited_per_message(world: World) -> None:
    app = await world.start(DELIVERY_GATEWAY_RESEND_LIMIT_PER_MESSAGE=2, DELIVERY_GATEWAY_RESEND_WINDOW=600)
    (message,) = failed_messages(world, "bob")
    assert code(await resend(app, API_KEY, message)) is None
    assert code(await resend(app, API_KEY, message, force=True)) is None
    limited = await resend(app, API_KEY, message, force=True)
    assert code(limited) == "RATE_LIMITED"
    assert 0 < limited["errors"][0]["extensions"]["retryAfter"] <= 600
    assert world.fake.calls["create_message"] == 2


async def test_resends_are_limited_per_caller(world: World) -> None:
    app = await world.start(DELIVERY_GATEWAY_RESEND_LIMIT_PER_CALLER=2)
    messages = failed_messages(world, "alice", count=3)
    assert [code(await resend(app, mint("alice"), m)) for m in messages] == [None, None, "RATE_LIMITED"]
    (bobs,) = failed_messages(world, "bob")
    assert code(await resend(app, mint("bob"), bobs)) is None  # another caller has an allowance of its own


@pytest.mark.parametrize(
    "twilio_code",
    [
        63016,  # WhatsApp: outside the 24 h session window
        63014,  # the recipient blocked the sender on the channel
        63049,  # Meta chose not to deliver a marketing template
    ],
)
async def test_a_failure_a_resend_cannot_fix_is_not_resent_unless_forced(world: World, twilio_code: int) -> None:
    app = await world.start()
    (hopeless,) = failed_messages(world, "alice", code=twilio_code)
    refused = await resend(app, mint("alice"), hopeless)
    assert code(refused) == "FAILED_PRECONDITION" and str(twilio_code) in refused["errors"][0]["message"]
    assert "create_message" not in world.fake.calls
    assert code(await resend(app, API_KEY, hopeless, force=True)) is None
    (worth_trying,) = failed_messages(world, "alice", code=30003)  # unreachable handset: may work next time
    assert code(await resend(app, mint("alice"), worth_trying)) is None


@pytest.mark.redis
async def test_replicas_share_the_allowances(world: World, redis_url: str) -> None:  # noqa: F811
    settings = {"DELIVERY_GATEWAY_CACHE_URL": redis_url, "DELIVERY_GATEWAY_RESEND_LIMIT_PER_MESSAGE": 1}
    first, second = await world.start(**settings), await world.start(**settings)
    (message,) = failed_messages(world, "bob")
    assert code(await resend(first, API_KEY, message)) is None
    assert code(await resend(second, API_KEY, message, force=True)) == "RATE_LIMITED"


async def test_the_resent_message_announces_itself() -> None:
    """Twilio fires onMessageAdded for a REST-made message only with `X-Twilio-Webhook-Enabled: true`; the resend
    asks for it, so subscribers see the new message like any other (the emulator fires none without the header)."""
    async with gateway_on_emulator(
        emulator={"seed_data": False, "simulate": False}, DELIVERY_GATEWAY_API_KEYS=API_KEY
    ) as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="resend")
        store.create_participant(conv.sid, identity="alice")
        store.create_participant(conv.sid, address="+15551230001", proxy_address="+15017122661")
        original, receipts = store.create_message(conv.sid, author="alice", body="hello", notify=False)
        receipts[0].advance("undelivered", 30003, original.date_created)
        async with connect(gw.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {API_KEY}"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            events = "subscription($c: String!) { messageEvents(conversationSid: $c) { action messageSid } }"
            payload = {"query": events, "variables": {"c": conv.sid}}
            await ws.send(json.dumps({"id": "e", "type": "subscribe", "payload": payload}))
            await asyncio.sleep(0.3)  # the subscription listens
            async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
                response = await client.post(
                    "/graphql",
                    json={"query": RESEND, "variables": {"c": conv.sid, "m": original.sid}},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
            assert response.json().get("data"), response.text
            created = response.json()["data"]["resendMessage"]["sid"]
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert event["payload"]["data"]["messageEvents"] == {"action": "ADDED", "messageSid": created}


async def test_resends_stop_when_the_allowances_cannot_be_counted(world: World) -> None:
    """The counters' store (here a Redis nobody listens on) is down: queries still work from Twilio, resends are
    refused rather than let through uncounted."""
    from tests.app_support import free_port

    app = await world.start(DELIVERY_GATEWAY_CACHE_URL=f"redis://127.0.0.1:{free_port()}/0?connect_timeout=0.2")
    (message,) = failed_messages(world, "bob")
    refused = await resend(app, API_KEY, message)
    assert code(refused) == "RATE_LIMITER_UNAVAILABLE"
    assert "create_message" not in world.fake.calls
    read = await post(app, {"query": f'{{ conversation(sid: "{CONV_ALICE}") {{ sid }} }}'}, API_KEY)
    assert read.json()["data"]["conversation"]["sid"] == CONV_ALICE
