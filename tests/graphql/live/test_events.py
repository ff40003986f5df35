"""Subscription events resolve with the state at their moment: every event gets fresh loaders and fresh
per-request memos, even though a WebSocket's context lives as long as the connection.

In-process: the real schema's `subscribe` over one long-lived context, the fake upstream, in-memory ledger and
pub/sub; events enter through the webhook processor.
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
from tests.graphql.gql_support import FULL

SUBSCRIPTION = """
subscription($c: String!) {
  deliveryUpdates(conversationSid: $c) { receipt { status } message { ticks recipients { status } } }
}
"""
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_each_event_sees_the_message_as_it_is_then(fake):
    conv = fake.add_conversation()
    alice = fake.add_chat(conv, "alice")
    sms = fake.add_binding(conv, "sms", "+15550001")
    message = fake.add_message(conv, alice, "hi", {sms.sid: (S.SENT, None)})
    receipt = conv.receipts[message.sid][0]
    services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
    await services.ledger.start()
    context = RequestContext(services, FULL)  # one context for the whole connection, as over a WebSocket
    stream = await build_schema(services.settings).subscribe(
        SUBSCRIPTION, variable_values={"c": conv.record.sid}, context_value=context
    )
    processor = WebhookProcessor(services.ledger, services.pubsub)

    async def twilio_reports(status: S, seconds: int) -> dict:
        conv.receipts[message.sid] = [replace(receipt, status=status)]  # what Twilio answers from now on
        event = DeliveryEvent(
            conversation_sid=conv.record.sid,
            message_sid=message.sid,
            receipt_sid=receipt.sid,
            status=status,
            participant_sid=sms.sid,
            date_updated=(T0 + timedelta(seconds=seconds)).isoformat(),
        )
        await processor.process(await services.ledger.inbox_add("{}"), event)
        result = await asyncio.wait_for(pending, 5)
        assert result.errors is None, result.errors
        return result.data["deliveryUpdates"]

    pending = asyncio.ensure_future(anext(stream))  # starts the subscription: it authorizes, then listens
    for _ in range(500):
        if services.pubsub.subscriber_count(conversation_channel(conv.record.sid)):
            break
        await asyncio.sleep(0.01)
    first = await twilio_reports(S.DELIVERED, 1)
    assert first["receipt"]["status"] == "DELIVERED" and first["message"]["ticks"] == "DELIVERED"

    pending = asyncio.ensure_future(anext(stream))
    second = await twilio_reports(S.UNDELIVERED, 2)
    assert second["receipt"]["status"] == "UNDELIVERED"
    assert second["message"]["ticks"] == "FAILED" and second["message"]["recipients"] == [{"status": "UNDELIVERED"}]
    await stream.aclose()
    await services.ledger.close()
