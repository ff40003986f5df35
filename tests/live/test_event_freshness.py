"""A subscription event carries the same data a query returns at that moment, event after event, on one connection.

A property over seeded random sequences of what Twilio sends for a group message: both recipients' receipts moving
one status at a time (duplicates included), a chat reader's horizon moving, the message edited, more messages
added and removed. Every webhook is signed and posted by the emulator (the gateway's stand-in for Twilio), one at a
time; after each, the event it caused is compared with a fresh query through the same app. Runs on one
graphql-transport-ws connection (all three subscriptions on it) and on graphql-sse.

Never compares an event with a query made while another webhook is in flight: each step waits until the gateway
has processed its webhook and the event has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest

from delivery_gateway.emulator.models import WHATSAPP, Participant, Receipt
from delivery_gateway.emulator.webhook_events import (
    ON_DELIVERY_UPDATED,
    ON_MESSAGE_ADDED,
    ON_MESSAGE_REMOVED,
    ON_MESSAGE_UPDATED,
    ON_PARTICIPANT_UPDATED,
    delivery_params,
    message_added_params,
    message_removed_params,
    message_updated_params,
    participant_updated_params,
    sdk,
)
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import Live, live

MESSAGE_FIELDS = """
  sid index author body attributes
  delivery { total sent delivered read failed undelivered }
  ticks
  receipts { sid status errorCode }
  recipients { status participant { sid } }
"""

DELIVERY_UPDATES = (
    "subscription($c: String!) { deliveryUpdates(conversationSid: $c) {"
    " cursor previousStatus receipt { sid status } message {" + MESSAGE_FIELDS + "} } }"
)
READ_HORIZON_UPDATES = (
    "subscription($c: String!) { readHorizonUpdates(conversationSid: $c) {"
    " cursor participantSid lastReadMessageIndex participant { sid identity lastReadMessageIndex } } }"
)
MESSAGE_EVENTS = (
    "subscription($c: String!) { messageEvents(conversationSid: $c) {"
    " cursor action messageSid message {" + MESSAGE_FIELDS + "} } }"
)
MESSAGE_QUERY = "query($c: String!, $m: String!) { message(conversationSid: $c, sid: $m) {" + MESSAGE_FIELDS + "} }"
PARTICIPANTS_QUERY = (
    "query($c: String!) { conversation(sid: $c) { participants { sid identity lastReadMessageIndex } } }"
)

SUBSCRIPTIONS = {"delivery": DELIVERY_UPDATES, "horizon": READ_HORIZON_UPDATES, "messages": MESSAGE_EVENTS}

# What a receipt can move to from where it is (a status of higher rank, as merge_receipt orders them); READ only
# on WhatsApp (Twilio: read receipts are for WhatsApp/OTT, never SMS).
NEXT = {
    "sent": ("delivered", "undelivered", "failed", "read"),
    "delivered": ("read", "undelivered"),
}
ERROR_CODES = {"undelivered": 30003, "failed": 30008}


class Events(Protocol):
    """One transport's subscriptions of one conversation: the next payload of each, by name."""

    async def next(self, name: str) -> dict[str, Any]: ...

    async def quiet(self, seconds: float) -> list[tuple[str, dict[str, Any]]]: ...


class WsEvents:
    """All three subscriptions on ONE graphql-transport-ws connection (the connection's state is shared by them)."""

    def __init__(self, client: TransportWsClient) -> None:
        self.client = client
        self.names: dict[str, str] = {}
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {name: asyncio.Queue() for name in SUBSCRIPTIONS}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, conversation_sid: str) -> None:
        for name, query in SUBSCRIPTIONS.items():
            self.names[await self.client.subscribe(query, {"c": conversation_sid})] = name
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                message = await self.client.next(wait=3600)
            except Exception:  # the connection closed: the test's own assertions say what went wrong
                return
            assert message["type"] == "next", message
            await self.queues[self.names[message["id"]]].put(message["payload"])

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def next(self, name: str) -> dict[str, Any]:
        return await asyncio.wait_for(self.queues[name].get(), 10)

    async def quiet(self, seconds: float) -> list[tuple[str, dict[str, Any]]]:
        await asyncio.sleep(seconds)
        return [(name, q.get_nowait()) for name, q in self.queues.items() if not q.empty()]


class SseEvents:
    """Each subscription on its own graphql-sse stream (distinct connections mode)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {name: asyncio.Queue() for name in SUBSCRIPTIONS}
        self._readers: list[asyncio.Task[None]] = []
        self._opened: list[asyncio.Event] = []

    async def start(self, conversation_sid: str) -> None:
        for name, query in SUBSCRIPTIONS.items():
            opened = asyncio.Event()
            self._opened.append(opened)
            self._readers.append(asyncio.create_task(self._read(name, query, conversation_sid, opened)))
        for opened in self._opened:
            await asyncio.wait_for(opened.wait(), 10)

    async def _read(self, name: str, query: str, conversation_sid: str, opened: asyncio.Event) -> None:
        body = {"query": query, "variables": {"c": conversation_sid}}
        headers = {"accept": "text/event-stream"}
        async with self.http.stream("POST", "/graphql", json=body, headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            opened.set()
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[5:].strip():
                    await self.queues[name].put(json.loads(line[5:]))

    async def stop(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def next(self, name: str) -> dict[str, Any]:
        return await asyncio.wait_for(self.queues[name].get(), 10)

    async def quiet(self, seconds: float) -> list[tuple[str, dict[str, Any]]]:
        await asyncio.sleep(seconds)
        return [(name, q.get_nowait()) for name, q in self.queues.items() if not q.empty()]


@dataclass
class Scenario:
    """One conversation driven by a seeded random sequence of Twilio webhooks, checked after each."""

    lv: Live
    events: Events
    rng: random.Random
    conversation_sid: str = ""
    service_sid: str | None = None
    reader: Participant | None = None
    messages: list[str] = field(default_factory=list)  # SIDs of messages still there
    open_receipts: list[Receipt] = field(default_factory=list)  # receipts that can still change
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUBSCRIPTIONS, 0))

    @property
    def store(self):
        return self.lv.emulator.state.store

    def setup(self) -> None:
        conversation = self.store.create_conversation(friendly_name="freshness")
        self.conversation_sid, self.service_sid = conversation.sid, conversation.service_sid
        self.store.create_participant(conversation.sid, identity="agent")
        self.reader = self.store.create_participant(conversation.sid, identity="reader")
        self.store.create_participant(conversation.sid, address="+15550001111", proxy_address="+15559990000")
        self.store.create_participant(
            conversation.sid, address="whatsapp:+15550002222", proxy_address="whatsapp:+15559990000"
        )

    async def post(self, event_type: str, params: dict[str, str]) -> None:
        """What Twilio does: one signed webhook, posted; returns once the gateway has processed it."""
        state = self.lv.emulator.state
        assert state.webhooks.emit(self.service_sid, event_type, params)
        await state.webhooks.drain()
        await self.lv.gateway.ingest.drain()

    async def query(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.lv.http.post("/graphql", json={"query": query, "variables": variables})
        return response.json()

    async def fresh_message(self, message_sid: str) -> dict[str, Any]:
        body = await self.query(MESSAGE_QUERY, c=self.conversation_sid, m=message_sid)
        assert not body.get("errors"), body
        return body["data"]["message"]

    # The steps, each followed by the check of the event it causes.

    async def add_message(self) -> None:
        message, receipts = self.store.create_message(
            self.conversation_sid, author="agent", body=f"m{len(self.messages)}", notify=False
        )
        self.messages.append(message.sid)
        await self.post(ON_MESSAGE_ADDED, message_added_params(self.store, message))
        await self.check_message_event("ADDED", message.sid)
        for receipt in receipts:  # each receipt's first status, one webhook each (seed 001)
            receipt.planned = []
            await self.post(ON_DELIVERY_UPDATED, delivery_params(self.store, receipt))
            await self.check_delivery_event(receipt)
            self.open_receipts.append(receipt)

    async def advance_receipt(self) -> None:
        receipt = self.rng.choice(self.open_receipts)
        channel = self.store.participants[self.conversation_sid][receipt.participant_sid].channel
        choices = [s for s in NEXT[receipt.status] if s != "read" or channel == WHATSAPP]
        status = self.rng.choice(choices)
        receipt.advance(status, ERROR_CODES.get(status), self.store.clock())
        if status not in NEXT:
            self.open_receipts.remove(receipt)
        await self.post(ON_DELIVERY_UPDATED, delivery_params(self.store, receipt))
        await self.check_delivery_event(receipt)

    async def repeat_receipt(self) -> None:
        """A duplicate of a receipt's last webhook (Twilio may send one twice): no event, the next one still right."""
        message_sid = self.rng.choice(self.messages)
        receipt = self.rng.choice(self.store.receipts_of(message_sid))
        await self.post(ON_DELIVERY_UPDATED, delivery_params(self.store, receipt))

    async def move_horizon(self) -> None:
        assert self.reader is not None
        latest = max(self.store.messages[self.conversation_sid][sid].index for sid in self.messages)
        current = self.reader.last_read_message_index
        if current is not None and current >= latest:
            return
        index = self.rng.randint(0 if current is None else current + 1, latest)
        assert self.store.mark_read(self.reader, index)
        await self.post(ON_PARTICIPANT_UPDATED, participant_updated_params(self.store, self.reader, sdk("reader")))
        payload = self.payload(await self.events.next("horizon"), "readHorizonUpdates")
        assert payload["participantSid"] == self.reader.sid and payload["lastReadMessageIndex"] == index
        body = await self.query(PARTICIPANTS_QUERY, c=self.conversation_sid)
        assert not body.get("errors"), body
        (fresh,) = [p for p in body["data"]["conversation"]["participants"] if p["sid"] == self.reader.sid]
        assert payload["participant"] == fresh
        self.checked["horizon"] += 1

    async def edit_message(self) -> None:
        message = self.store.find_message(self.conversation_sid, self.rng.choice(self.messages))
        self.store.update_message(message, body=f"{message.body}+", attributes=json.dumps({"edit": self.rng.random()}))
        await self.post(ON_MESSAGE_UPDATED, message_updated_params(self.store, message, sdk("agent")))
        await self.check_message_event("UPDATED", message.sid)

    async def remove_message(self) -> None:
        sid = self.messages.pop(self.rng.randrange(1, len(self.messages)))  # the first one stays
        message = self.store.find_message(self.conversation_sid, sid)
        self.store.delete_message(message)
        self.open_receipts = [r for r in self.open_receipts if r.message_sid != sid]
        await self.post(ON_MESSAGE_REMOVED, message_removed_params(self.store, message, self.store.clock()))
        payload = self.payload(await self.events.next("messages"), "messageEvents")
        assert (payload["action"], payload["messageSid"], payload["message"]) == ("REMOVED", sid, None)
        body = await self.query(MESSAGE_QUERY, c=self.conversation_sid, m=sid)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
        self.checked["messages"] += 1

    # The checks.

    @staticmethod
    def payload(message: dict[str, Any], name: str) -> dict[str, Any]:
        assert not message.get("errors"), message
        return message["data"][name]

    async def check_delivery_event(self, receipt: Receipt) -> None:
        payload = self.payload(await self.events.next("delivery"), "deliveryUpdates")
        assert payload["receipt"] == {"sid": receipt.sid, "status": receipt.status.upper()}
        assert payload["message"] == await self.fresh_message(receipt.message_sid)
        self.checked["delivery"] += 1

    async def check_message_event(self, action: str, message_sid: str) -> None:
        payload = self.payload(await self.events.next("messages"), "messageEvents")
        assert (payload["action"], payload["messageSid"]) == (action, message_sid)
        assert payload["message"] == await self.fresh_message(message_sid)
        self.checked["messages"] += 1

    async def run(self, steps: int) -> None:
        await self.add_message()
        for _ in range(steps):
            moves = [self.repeat_receipt, self.move_horizon, self.edit_message]
            if self.open_receipts:
                moves += [self.advance_receipt] * 4  # mostly receipts: the group message's delivery
            if len(self.messages) < 3:
                moves.append(self.add_message)
            if len(self.messages) > 1:
                moves.append(self.remove_message)
            await self.rng.choice(moves)()
        assert await self.events.quiet(0.3) == [], "an event nobody caused (a duplicate webhook made one?)"


@contextlib.asynccontextmanager
async def subscribed(lv: Live, transport: str, conversation_sid: str) -> AsyncIterator[Events]:
    if transport == "ws":
        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            events: WsEvents | SseEvents = WsEvents(client)
            await events.start(conversation_sid)
            await asyncio.sleep(0.2)  # the server registered the three subscriptions
            try:
                yield events
            finally:
                await events.stop()
    else:
        events = SseEvents(lv.http)
        await events.start(conversation_sid)
        await asyncio.sleep(0.2)
        try:
            yield events
        finally:
            await events.stop()


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_every_event_equals_a_fresh_query_at_that_moment(tmp_path, transport):
    async with live(tmp_path) as lv:
        for seed in range(3):
            rng = random.Random(f"freshness/{transport}/{seed}")
            scenario = Scenario(lv, events=None, rng=rng)  # type: ignore[arg-type]
            scenario.setup()
            async with subscribed(lv, transport, scenario.conversation_sid) as events:
                scenario.events = events
                try:
                    await scenario.run(steps=14)
                except AssertionError as failure:
                    raise AssertionError(f"seed {seed} ({transport}): {failure}") from failure
            # Every kind of event was compared at least once over the run (the property is not vacuous).
            assert scenario.checked["delivery"] >= 4 and scenario.checked["messages"] >= 1, scenario.checked


async def test_queries_over_one_websocket_each_read_the_state_at_their_moment(tmp_path):
    """A query sent over a long-lived WebSocket is resolved with state of its own, never an earlier operation's."""
    async with live(tmp_path) as lv:
        scenario = Scenario(lv, events=None, rng=random.Random("ws-queries"))  # type: ignore[arg-type]
        scenario.setup()
        store = scenario.store
        message, receipts = store.create_message(scenario.conversation_sid, author="agent", body="q", notify=False)
        async with TransportWsClient.connect(lv.gateway.ws_url) as client:
            for status in ("sent", "delivered", "read"):
                receipt = receipts[1]  # the WhatsApp recipient
                receipt.advance(status, None, store.clock())
                await scenario.post(ON_DELIVERY_UPDATED, delivery_params(store, receipt))
                op = await client.subscribe(MESSAGE_QUERY, {"c": scenario.conversation_sid, "m": message.sid})
                answer = await client.next()
                assert (answer["type"], answer["id"]) == ("next", op), answer
                assert answer["payload"]["data"]["message"] == await scenario.fresh_message(message.sid)
                assert (await client.next())["type"] == "complete"
