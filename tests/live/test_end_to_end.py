"""End to end: the emulator's simulator posts signed webhooks -> gateway -> a graphql-transport-ws subscriber;
the next query shows the change without another upstream call. Also resendMessage and webhooks install.

Runs the emulator and the gateway under uvicorn on ephemeral ports; never sleeps on a fixed schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from delivery_gateway.emulator import EmulatorConfig, RunningEmulator, serve_emulator
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.client import UpstreamClient
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS, install_webhooks
from tests.live.harness import Gateway, TransportWsClient, serve_gateway
from tests.postgres_support import live_store_url

DELIVERY_UPDATES = """
subscription($c: String!, $after: String) {
  deliveryUpdates(conversationSid: $c, after: $after) {
    cursor previousStatus
    receipt { sid status participantSid }
    message { sid delivery { total sent delivered read failed undelivered } ticks }
  }
}"""

MESSAGE_QUERY = """
query($c: String!, $m: String!) {
  message(conversationSid: $c, sid: $m) {
    sid delivery { total sent delivered read failed undelivered } ticks
    receipts { sid status }
    recipients { status }
  }
}"""


@dataclass
class Live:
    emulator: RunningEmulator
    gateway: Gateway
    http: httpx.AsyncClient

    @property
    def upstream(self) -> UpstreamClient:
        """The app's own client: its call log counts every Twilio call the gateway made."""
        return self.gateway.services.upstream

    async def query(self, query: str, **variables) -> dict:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]


def emulator_config(**overrides) -> EmulatorConfig:
    values = {
        "seed": 11,
        "simulate": False,
        "failure_rate": 0.0,
        "whatsapp_read_rate": 1.0,
        "chat_read_rate": 0.0,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


def gateway_settings(emulator: RunningEmulator, tmp_path, **overrides) -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": emulator.state.config.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.state.config.auth_token,
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": emulator.base_url,
        "DELIVERY_GATEWAY_STORE_URL": live_store_url(tmp_path),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def live(tmp_path, config: EmulatorConfig | None = None, **overrides) -> AsyncIterator[Live]:
    async with serve_emulator(config or emulator_config()) as emulator:
        settings = gateway_settings(emulator, tmp_path, **overrides)
        async with serve_gateway(settings, upstream=None) as gateway:  # the app builds its real UpstreamClient
            emulator.state.set_webhook(post_webhook_url=gateway.webhook_url, filters=WEBHOOK_FILTERS)
            async with httpx.AsyncClient(base_url=gateway.base_url) as http:
                yield Live(emulator, gateway, http)


def conversation_with_recipients(emulator: RunningEmulator):
    store = emulator.state.store
    conversation = store.create_conversation(friendly_name="live")
    store.create_participant(conversation.sid, identity="agent")
    store.create_participant(conversation.sid, address="+15550001111", proxy_address="+15559990000")
    store.create_participant(conversation.sid, address="whatsapp:+15550002222", proxy_address="whatsapp:+1555999")
    return conversation


async def settle(live: Live) -> None:
    """Every webhook the emulator queued was posted, and every accepted one processed."""
    await live.emulator.state.simulator.idle()
    await live.gateway.ingest.drain()


async def test_webhook_reaches_subscriber_and_next_query_needs_no_upstream_call(tmp_path):
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        message, receipts = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        await settle(lv)
        # Warm the cache: message, receipts, participants.
        before = await lv.query(MESSAGE_QUERY, c=conversation.sid, m=message.sid)
        assert {r["status"] for r in before["message"]["receipts"]} == {"SENT"}

        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            op = await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid})
            await asyncio.sleep(0.1)  # the subscription is registered before the simulator moves on
            calls_before = state.requests.count()
            await state.simulator.advance_all()
            await lv.gateway.ingest.drain()
            updates = []
            while len(updates) < 3:  # sms: delivered; whatsapp: delivered, read
                message_ = await client.next()
                assert message_["type"] == "next", message_
                assert message_["id"] == op
                updates.append(message_["payload"]["data"]["deliveryUpdates"])
        by_status = [(u["receipt"]["status"], u["previousStatus"]) for u in updates]
        assert sorted(by_status) == [("DELIVERED", "SENT"), ("DELIVERED", "SENT"), ("READ", "DELIVERED")]
        last = updates[-1]["message"]
        assert last["delivery"] == {
            "total": 2,
            "sent": "ALL",
            "delivered": "ALL",
            "read": "SOME",
            "failed": "NONE",
            "undelivered": "NONE",
        }
        cursors = [int(u["cursor"]) for u in updates]
        assert cursors == sorted(cursors)

        after = await lv.query(MESSAGE_QUERY, c=conversation.sid, m=message.sid)
        assert state.requests.count() == calls_before, state.requests.snapshot()
        emulated = {r.sid: r.status.upper() for r in receipts}
        assert {r["sid"]: r["status"] for r in after["message"]["receipts"]} == emulated
        assert after["message"]["delivery"] == last["delivery"]


async def test_resume_from_cursor_gets_the_missed_events_once(tmp_path):
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid})
            await asyncio.sleep(0.1)
            state.store.create_message(conversation.sid, author="agent", body="one")
            await settle(lv)
            first = (await client.next())["payload"]["data"]["deliveryUpdates"]
        # Disconnected after one event: everything else happens while away.
        await settle(lv)
        await state.simulator.advance_all()
        state.store.create_message(conversation.sid, author="agent", body="two")
        await settle(lv)
        everything = await lv.gateway.ledger.changes_after(conversation.sid, 0)
        deliveries = [c for c in everything if c.kind.value == "delivery"]
        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            await client.subscribe(DELIVERY_UPDATES, {"c": conversation.sid, "after": first["cursor"]})
            got = []
            expected = [str(c.seq) for c in deliveries if c.seq > int(first["cursor"])]
            while len(got) < len(expected):
                got.append((await client.next())["payload"]["data"]["deliveryUpdates"]["cursor"])
            assert got == expected
            # Then live, no duplicate of the replay.
            await state.simulator.advance_all()
            await lv.gateway.ingest.drain()
            live_event = (await client.next())["payload"]["data"]["deliveryUpdates"]
            assert int(live_event["cursor"]) > int(expected[-1])


RESEND = """
mutation($c: String!, $m: String!, $force: Boolean! = false) {
  resendMessage(conversationSid: $c, messageSid: $m, force: $force) { sid body attributes }
}"""


async def test_resend_failed_message_links_both_ways(tmp_path):
    async with live(tmp_path, emulator_config(failure_rate=1.0)) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="lost", attributes='{"k": 1}')
        await state.simulator.advance_all()
        await settle(lv)
        body = (
            await lv.http.post(
                "/graphql", json={"query": RESEND, "variables": {"c": conversation.sid, "m": message.sid}}
            )
        ).json()
        assert not body.get("errors"), body
        new = body["data"]["resendMessage"]
        assert new["sid"] != message.sid and new["body"] == "lost"
        assert new["attributes"] == {"k": 1, "resendOf": message.sid}
        assert await lv.gateway.ledger.resent_as(message.sid) == [new["sid"]]
        assert await lv.gateway.ledger.resend_of(new["sid"]) == message.sid
        links = await lv.query(
            "query($c: String!, $old: String!, $new: String!) {"
            " old: message(conversationSid: $c, sid: $old) { resentAs { sid } }"
            " new: message(conversationSid: $c, sid: $new) { resendOf { sid } } }",
            c=conversation.sid,
            old=message.sid,
            new=new["sid"],
        )
        assert links == {"old": {"resentAs": [{"sid": new["sid"]}]}, "new": {"resendOf": {"sid": message.sid}}}
        again = (
            await lv.http.post(
                "/graphql", json={"query": RESEND, "variables": {"c": conversation.sid, "m": message.sid}}
            )
        ).json()
        assert again["errors"][0]["extensions"]["code"] == "FAILED_PRECONDITION"


async def test_resend_refuses_a_delivered_message(tmp_path):
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="fine")
        await state.simulator.advance_all()
        await settle(lv)
        variables = {"c": conversation.sid, "m": message.sid}
        body = (await lv.http.post("/graphql", json={"query": RESEND, "variables": variables})).json()
        assert body["data"] is None or body["data"]["resendMessage"] is None
        assert body["errors"][0]["extensions"]["code"] == "FAILED_PRECONDITION"
        assert "not failed or undelivered" in body["errors"][0]["message"]


async def test_install_webhooks_sets_url_method_filters(tmp_path):
    async with live(tmp_path) as lv:
        lv.emulator.state.set_webhook(post_webhook_url="https://old.example.com/hook", filters=["onMessageAdded"])
        [change] = (await install_webhooks(lv.upstream, "https://gw.example.com/webhooks/twilio")).changes
        before, after = change.before, change.after
        assert before.post_webhook_url == "https://old.example.com/hook"
        assert after.post_webhook_url == "https://gw.example.com/webhooks/twilio"
        assert after.method.upper() == "POST"
        assert set(after.filters) == set(WEBHOOK_FILTERS)
        service = lv.emulator.state.store.create_service("other")
        [change] = (await install_webhooks(lv.upstream, "https://gw.example.com/wh", service_sid=service.sid)).changes
        after = change.after
        assert after.post_webhook_url == "https://gw.example.com/wh"
        assert json.dumps(sorted(after.filters)) == json.dumps(sorted(WEBHOOK_FILTERS))


async def sse_events(http: httpx.AsyncClient, query: str, variables: dict, count: int) -> list[dict]:
    """Run a subscription over graphql-sse (distinct connections mode) and return its first `count` payloads."""
    out: list[dict] = []
    body = {"query": query, "variables": variables}
    async with http.stream("POST", "/graphql", json=body, headers={"accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:") and line[5:].strip():
                out.append(json.loads(line[5:]))
                if len(out) == count:
                    return out
    return out


async def test_sse_read_horizon_and_message_events(tmp_path):
    async with live(tmp_path, emulator_config(chat_read_rate=1.0)) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        state.store.create_participant(conversation.sid, identity="reader")
        horizons = asyncio.create_task(
            sse_events(
                lv.http,
                "subscription($c: String!) { readHorizonUpdates(conversationSid: $c) {"
                " cursor identity lastReadMessageIndex participant { lastReadMessageIndex } } }",
                {"c": conversation.sid},
                1,
            )
        )
        messages = asyncio.create_task(
            sse_events(
                lv.http,
                "subscription($c: String!) { messageEvents(conversationSid: $c) {"
                " cursor action messageSid message { body } } }",
                {"c": conversation.sid},
                1,
            )
        )
        await asyncio.sleep(0.2)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="sse")
        await state.simulator.advance_all()
        await settle(lv)
        (horizon,) = await asyncio.wait_for(horizons, 5)
        (added,) = await asyncio.wait_for(messages, 5)
        update = horizon["data"]["readHorizonUpdates"]
        assert update["identity"] == "reader" and update["lastReadMessageIndex"] == message.index
        assert update["participant"]["lastReadMessageIndex"] == message.index
        event = added["data"]["messageEvents"]
        assert event["action"] == "ADDED" and event["messageSid"] == message.sid
        assert event["message"]["body"] == "sse"
