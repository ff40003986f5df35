"""A long-lived subscription keeps its memory flat: 10,000 events delivered on one connection leave nothing behind
per event (each event's loaders and memos go with the event), and the connection's own context never holds any.

In-process: the real schema's `subscribe` over one long-lived context (as a WebSocket's), the fake upstream,
in-memory ledger and pub/sub. The first change is a real webhook through the processor; the rest are that change
published again under the next sequence numbers, as the processor publishes committed changes (so the test runs
10,000 events in seconds and measures the subscription, not the ledger).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import tracemalloc

from delivery_gateway.changes import stream as stream_module
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
  deliveryUpdates(conversationSid: $c) {
    cursor message { ticks }
  }
}
"""
# 10,000 events in all: gc-tracked objects counted over one stretch, then traced bytes over the last one (tracemalloc
# slows everything down, so it only watches the end, after SETTLE events in which what is bounded but churns — the
# stream's dedupe window, the tables of sets and dicts — reaches its size under tracing).
WARM_UP, COUNTED, SETTLE, TRACED = 5_000, 3_700, 300, 1_000
MAX_NEW_OBJECTS = 100  # gc-tracked objects more after COUNTED events: one container kept per 30 events fails
DEDUPE_WINDOW = 16  # the stream's dedupe window (changes/stream.py: bounded, not per event), small to settle early
MAX_GROWTH = 16 * 1024  # bytes more after TRACED events: a leak of 16 bytes per event fails


async def test_ten_thousand_events_on_one_connection_keep_memory_flat(fake, monkeypatch):
    monkeypatch.setattr(stream_module, "SEEN_WINDOW", DEDUPE_WINDOW)
    conv = fake.add_conversation()
    agent = fake.add_chat(conv, "agent")
    sms = fake.add_binding(conv, "sms", "+15550001")
    whatsapp = fake.add_binding(conv, "whatsapp", "whatsapp:+15550002")
    message = fake.add_message(conv, agent, "hi", {sms.sid: (S.SENT, None), whatsapp.sid: (S.SENT, None)})
    services = GatewayServices(settings=Settings(_env_file=None), upstream=fake)
    await services.ledger.start()
    context = RequestContext(services, FULL)  # one context for the whole connection, as over a WebSocket
    stream = await build_schema(services.settings).subscribe(
        SUBSCRIPTION, variable_values={"c": conv.record.sid}, context_value=context
    )
    channel = conversation_channel(conv.record.sid)
    pending = asyncio.ensure_future(anext(stream))  # starts the subscription: it authorizes, then listens
    for _ in range(500):
        if services.pubsub.subscriber_count(channel):
            break
        await asyncio.sleep(0.01)
    receipt = conv.receipts[message.sid][0]
    event = DeliveryEvent(
        conversation_sid=conv.record.sid,
        message_sid=message.sid,
        receipt_sid=receipt.sid,
        status=S.DELIVERED,
        participant_sid=sms.sid,
        date_updated="2026-01-01T00:00:01+00:00",
    )
    result = await WebhookProcessor(services.ledger, services.pubsub).process(
        await services.ledger.inbox_add("{}"), event
    )
    change = result.change
    assert change is not None
    first = await asyncio.wait_for(pending, 5)
    assert first.errors is None, first.errors

    async def deliver(count: int, start: int) -> None:
        for seq in range(start, start + count):
            await services.pubsub.publish(channel, dataclasses.replace(change, seq=seq).to_json())
            out = await asyncio.wait_for(anext(stream), 5)
            assert out.errors is None and out.data["deliveryUpdates"]["cursor"] == str(seq), out

    seq = change.seq + 1
    await deliver(WARM_UP, seq)
    gc.collect()
    objects = len(gc.get_objects())
    await deliver(COUNTED, seq := seq + WARM_UP)
    gc.collect()
    kept = len(gc.get_objects()) - objects
    assert kept < MAX_NEW_OBJECTS, f"{kept} objects kept over {COUNTED} events"
    tracemalloc.start()
    try:
        await deliver(SETTLE, seq := seq + COUNTED)
        gc.collect()
        settled, _ = tracemalloc.get_traced_memory()  # allocated since start and still alive
        await deliver(TRACED, seq + SETTLE)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - settled
    finally:
        tracemalloc.stop()
    assert grown < MAX_GROWTH, f"{grown} bytes kept after {TRACED} events"
    # The connection's context never held request-scoped state: each event had its own.
    assert not context.holds_loaders
    await stream.aclose()
    await services.ledger.close()
