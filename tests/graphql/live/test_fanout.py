"""Grouped fan-out through the real schema: subscribers of the same subscription, variables and caller scope share
one execution per event; different scopes or variables never share; what is shared is what a fresh query says.

In-process: the real schema's `subscribe`, the fake upstream, in-memory ledger and pub/sub; events enter through
the webhook processor. Executions are counted by the process's fan-out (and its metric).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.pubsub import conversation_channel
from delivery_gateway.webhooks.processor import WebhookProcessor
from tests.graphql.gql_support import FULL, participant_caller

SUBSCRIPTION = """
subscription($c: String!) {
  deliveryUpdates(conversationSid: $c) { cursor receipt { status } message { sid ticks recipients { status } } }
}
"""
QUERY = "query($c: String!, $m: String!) { message(conversationSid: $c, sid: $m) { sid ticks recipients { status } } }"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Group:
    def __init__(self, fake) -> None:
        self.conv = fake.add_conversation()
        self.agent = fake.add_chat(self.conv, "agent")
        self.bob = fake.add_chat(self.conv, "bob")
        self.sms = fake.add_binding(self.conv, "sms", "+15550001")
        self.message = fake.add_message(self.conv, self.agent, "hi", {self.sms.sid: (S.SENT, None)})
        self.services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
        self.schema = build_schema(self.services.settings)
        self.processor = WebhookProcessor(self.services.ledger, self.services.pubsub)
        self.streams: list = []
        self.pending: list = []

    async def subscribe(self, caller, conversation_sid: str | None = None) -> None:
        context = RequestContext(self.services, caller)
        stream = await self.schema.subscribe(
            SUBSCRIPTION, variable_values={"c": conversation_sid or self.conv.record.sid}, context_value=context
        )
        self.streams.append(stream)
        self.pending.append(asyncio.ensure_future(anext(stream)))

    async def listening(self) -> None:
        channel = conversation_channel(self.conv.record.sid)
        for _ in range(500):
            if self.services.pubsub.subscriber_count(channel) >= len(self.streams):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not every subscription listened")

    async def report(self, status: S, seconds: int) -> list:
        receipt = self.conv.receipts[self.message.sid][0]
        self.conv.receipts[self.message.sid] = [replace(receipt, status=status)]
        event = DeliveryEvent(
            conversation_sid=self.conv.record.sid,
            message_sid=self.message.sid,
            receipt_sid=receipt.sid,
            status=status,
            participant_sid=self.sms.sid,
            date_updated=(T0 + timedelta(seconds=seconds)).isoformat(),
        )
        await self.processor.process(await self.services.ledger.inbox_add("{}"), event)
        results = await asyncio.wait_for(asyncio.gather(*self.pending), 5)
        self.pending = [asyncio.ensure_future(anext(s)) for s in self.streams]
        for result in results:
            assert result.errors is None, result.errors
        return results

    async def fresh(self) -> dict:
        context = RequestContext(self.services, FULL)
        result = await self.schema.execute(
            QUERY, variable_values={"c": self.conv.record.sid, "m": self.message.sid}, context_value=context
        )
        assert result.errors is None, result.errors
        return result.data["message"]

    async def close(self) -> None:
        for task in self.pending:
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        for stream in self.streams:
            await stream.aclose()


async def test_subscribers_of_one_scope_share_one_execution_per_event(fake):
    group = Group(fake)
    await group.services.ledger.start()
    for _ in range(5):
        await group.subscribe(FULL)
    await group.listening()
    fanout = group.services.fanout
    for seconds, status in enumerate((S.DELIVERED, S.READ), start=1):
        executions, shared = fanout.executions, fanout.shared
        results = await group.report(status, seconds)
        assert (fanout.executions - executions, fanout.shared - shared) == (1, 4)
        assert all(r.data is results[0].data for r in results)  # one result object, serialised once per frame
        event = results[0].data["deliveryUpdates"]
        assert event["receipt"]["status"] == status.name
        assert event["message"] == await group.fresh()
    assert group.services.metrics.sample("delivery_gateway_subscription_events_total", {"outcome": "shared"}) == 8
    await group.close()
    await group.services.ledger.close()


async def test_different_scopes_never_share(fake):
    group = Group(fake)
    await group.services.ledger.start()
    await group.subscribe(FULL)
    await group.subscribe(participant_caller("agent"))
    await group.subscribe(participant_caller("bob"))
    await group.subscribe(participant_caller("bob"))  # the same scope as the one before: shares with it
    await group.listening()
    fanout = group.services.fanout
    results = await group.report(S.DELIVERED, 1)
    assert (fanout.executions, fanout.shared) == (3, 1)
    assert results[3].data is results[2].data and results[1].data is not results[0].data
    assert results[1].data is not results[2].data
    await group.close()
    await group.services.ledger.close()
