"""serviceDeliveryUpdates through the real schema: every conversation of a service in cursor order, replayed after
a cursor then live (each once), filtered by status, resolved with each event's own loaders, API-key callers only.

In-process: the real schema's `subscribe`, the fake upstream, in-memory ledger and pub/sub; events enter through
the webhook processor (which publishes on the conversation and the service channels).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.pubsub import service_channel
from delivery_gateway.webhooks.processor import WebhookProcessor
from tests.graphql.fake_upstream import DEFAULT_SERVICE
from tests.graphql.gql_support import FULL, participant_caller

OTHER_SERVICE = "IS" + "0e" * 16
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STREAM = """
subscription($service: String, $statuses: [DeliveryStatus!], $after: String) {
  serviceDeliveryUpdates(serviceSid: $service, statuses: $statuses, after: $after) {
    cursor conversationSid messageSid previousStatus
    receipt { sid status errorCode error { name } }
  }
}
"""


class Feed:
    """Two conversations of the default service and one of another, each with one SMS receipt; `report` makes
    Twilio (the fake) and the gateway (a webhook through the processor) agree on a receipt's new status."""

    def __init__(self, fake, services: GatewayServices) -> None:
        self.fake = fake
        self.services = services
        self.processor = WebhookProcessor(services.ledger, services.pubsub)
        self.schema = build_schema(services.settings)
        self.receipts = {}
        self.seconds = 0
        for name, service in (("a", DEFAULT_SERVICE), ("b", DEFAULT_SERVICE), ("x", OTHER_SERVICE)):
            conv = fake.add_conversation(name)
            agent = fake.add_chat(conv, "agent")
            sms = fake.add_binding(conv, "sms", "+15550001")
            message = fake.add_message(conv, agent, name, {sms.sid: (S.SENT, None)})
            self.receipts[name] = (conv, message, conv.receipts[message.sid][0], service)

    async def report(self, name: str, status: S, code: int | None = None) -> int:
        """The ledger cursor of the change (0: none, a duplicate included)."""
        conv, message, receipt, service = self.receipts[name]
        self.seconds += 1
        conv.receipts[message.sid] = [replace(receipt, status=status, error_code=code)]
        event = DeliveryEvent(
            conversation_sid=conv.record.sid,
            message_sid=message.sid,
            receipt_sid=receipt.sid,
            status=status,
            participant_sid=receipt.participant_sid,
            error_code=code,
            date_updated=(T0 + timedelta(seconds=self.seconds)).isoformat(),
            service_sid=service,
        )
        result = await self.processor.process(await self.services.ledger.inbox_add("{}"), event)
        return result.change.seq if result.change and not result.duplicate else 0

    async def subscribe(self, variables: dict, caller=FULL):
        context = RequestContext(self.services, caller)
        return await self.schema.subscribe(STREAM, variable_values=variables, context_value=context)

    async def listening(self, service: str = DEFAULT_SERVICE, count: int = 1) -> None:
        for _ in range(500):
            if self.services.pubsub.subscriber_count(service_channel(service)) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the subscription never listened")


@pytest.fixture
async def feed(fake):
    services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
    await services.ledger.start()
    yield Feed(fake, services)
    await services.ledger.close()


async def events(stream, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        result = await asyncio.wait_for(anext(stream), 5)
        assert result.errors is None, result.errors
        out.append(result.data["serviceDeliveryUpdates"])
    return out


async def test_every_conversation_of_the_service_in_cursor_order_then_resume(feed):
    stream = await feed.subscribe({})  # the default service, resolved through the Configuration
    first = asyncio.ensure_future(anext(stream))
    await feed.listening()
    assert feed.fake.calls["fetch_configuration"] == 1
    cursors = [
        await feed.report("a", S.DELIVERED),
        await feed.report("x", S.DELIVERED),  # another service: not in this stream
        await feed.report("b", S.DELIVERED),
        await feed.report("a", S.READ),
        await feed.report("a", S.READ),  # a duplicate changes nothing and pushes nothing
    ]
    assert all(cursors[:4]) and cursors[4] == 0
    got = [(await asyncio.wait_for(first, 5)).data["serviceDeliveryUpdates"], *await events(stream, 2)]
    assert [int(e["cursor"]) for e in got] == [cursors[0], cursors[2], cursors[3]]
    a, b = feed.receipts["a"], feed.receipts["b"]
    assert [(e["conversationSid"], e["messageSid"], e["receipt"]["status"], e["previousStatus"]) for e in got] == [
        (a[0].record.sid, a[1].sid, "DELIVERED", None),  # the ledger's first status of the receipt
        (b[0].record.sid, b[1].sid, "DELIVERED", None),
        (a[0].record.sid, a[1].sid, "READ", "DELIVERED"),
    ]
    await stream.aclose()
    assert feed.services.pubsub.subscriber_count(service_channel(DEFAULT_SERVICE)) == 0

    # Resume after the first event: the rest replayed from the ledger, then live ones, each once.
    resumed = await feed.subscribe({"service": DEFAULT_SERVICE, "after": got[0]["cursor"]})
    replayed = await events(resumed, 2)
    assert [e["cursor"] for e in replayed] == [got[1]["cursor"], got[2]["cursor"]]
    await feed.listening()
    await feed.report("x", S.READ)  # another service
    live = await feed.report("b", S.UNDELIVERED, 30003)
    (event,) = await events(resumed, 1)
    assert int(event["cursor"]) == live and event["previousStatus"] == "DELIVERED"
    assert event["receipt"]["error"] == {"name": "Unreachable destination handset"}
    await resumed.aclose()


async def test_statuses_filter_replay_and_live_alike(feed):
    seen_before = [await feed.report("a", S.DELIVERED), await feed.report("b", S.FAILED, 30008)]
    stream = await feed.subscribe({"statuses": ["FAILED", "UNDELIVERED"], "after": "0"})
    replayed = await events(stream, 1)
    assert [int(e["cursor"]) for e in replayed] == [seen_before[1]]
    await feed.listening()
    await feed.report("a", S.READ)
    assert await feed.report("x", S.UNDELIVERED, 30003)  # another service
    failed = await feed.report("a", S.FAILED, 30007)
    assert [int(e["cursor"]) for e in await events(stream, 1)] == [failed]
    await stream.aclose()


async def test_each_event_resolves_with_its_own_loaders(feed):
    query = """subscription { serviceDeliveryUpdates { receipt { status } message { ticks recipients { status } } } }"""
    context = RequestContext(feed.services, FULL)  # one context for the whole connection, as over a WebSocket
    stream = await feed.schema.subscribe(query, context_value=context)
    pending = asyncio.ensure_future(anext(stream))
    await feed.listening()
    await feed.report("a", S.DELIVERED)
    first = (await asyncio.wait_for(pending, 5)).data["serviceDeliveryUpdates"]
    assert first["receipt"]["status"] == "DELIVERED" and first["message"]["ticks"] == "DELIVERED"
    pending = asyncio.ensure_future(anext(stream))
    await feed.report("a", S.UNDELIVERED, 30003)
    second = (await asyncio.wait_for(pending, 5)).data["serviceDeliveryUpdates"]
    assert second["message"] == {"ticks": "FAILED", "recipients": [{"status": "UNDELIVERED"}]}
    await stream.aclose()


@pytest.mark.parametrize(
    ("variables", "code", "message"),
    [
        ({"after": "yesterday"}, "BAD_USER_INPUT", "after: not a cursor of this API"),
        ({"after": "999"}, "CURSOR_EXPIRED", "after: cursor 999 is newer than any change"),
        ({"statuses": []}, "BAD_USER_INPUT", "statuses: give at least one status"),
        ({"service": "IS42"}, "BAD_USER_INPUT", "serviceSid: 'IS42' is not a valid SID"),
    ],
)
async def test_bad_arguments_are_refused_with_a_code(feed, variables, code, message):
    stream = await feed.subscribe(variables)
    result = await asyncio.wait_for(anext(stream), 5)
    (error,) = result.errors
    assert error.extensions["code"] == code and error.message.startswith(message), error.message


async def test_a_cursor_older_than_the_retention_is_expired(feed):
    old = await feed.report("a", S.DELIVERED)
    await feed.report("b", S.DELIVERED)
    await feed.services.ledger.prune(datetime.now(UTC) + timedelta(days=1))  # everything recorded is now "old"
    stream = await feed.subscribe({"after": str(old)})
    (error,) = (await asyncio.wait_for(anext(stream), 5)).errors
    assert error.extensions["code"] == "CURSOR_EXPIRED"


async def test_participant_callers_are_forbidden_and_keep_their_conversations(feed):
    feed.fake.calls.clear()
    for service in (None, DEFAULT_SERVICE):
        stream = await feed.subscribe({"service": service}, caller=participant_caller("agent"))
        (error,) = (await asyncio.wait_for(anext(stream), 5)).errors
        assert error.extensions["code"] == "FORBIDDEN"
    assert dict(feed.fake.calls) == {}
    assert feed.services.pubsub.subscriber_count(service_channel(DEFAULT_SERVICE)) == 0
    conv = feed.receipts["a"][0]
    own = await feed.schema.subscribe(
        "subscription($c: String!) { deliveryUpdates(conversationSid: $c) { receipt { status } } }",
        variable_values={"c": conv.record.sid},
        context_value=RequestContext(feed.services, participant_caller("agent")),
    )
    pending = asyncio.ensure_future(anext(own))
    for _ in range(500):
        if feed.services.pubsub.subscriber_count(f"conversation:{conv.record.sid}"):
            break
        await asyncio.sleep(0.01)
    await feed.report("a", S.DELIVERED)
    assert (await asyncio.wait_for(pending, 5)).data["deliveryUpdates"]["receipt"]["status"] == "DELIVERED"
    await own.aclose()
