"""Grouped fan-out end to end: WebSocket subscribers of README's `Ticks` subscription on one gateway get
byte-identical frames for each event from ONE execution, and the event equals a fresh query.

The emulator signs and posts every webhook (Twilio's stand-in); the gateway is `create_app` under uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from delivery_gateway.emulator.webhook_events import ON_DELIVERY_UPDATED, delivery_params
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import conversation_with_recipients, live

TICKS = """
subscription Ticks($c: String!, $after: String) {
  deliveryUpdates(conversationSid: $c, after: $after) {
    cursor previousStatus
    receipt { sid status errorCode error { name } }
    message { sid ticks delivery { total delivered read failed } }
  }
}"""
QUERY = """
query($c: String!, $m: String!) {
  message(conversationSid: $c, sid: $m) { sid ticks delivery { total delivered read failed } }
}"""
SUBSCRIBERS = 6


async def test_subscribers_of_one_subscription_get_one_execution_and_identical_frames(tmp_path):
    async with live(tmp_path) as lv:
        state = lv.emulator.state
        conversation = conversation_with_recipients(lv.emulator)
        message, receipts = state.store.create_message(conversation.sid, author="agent", body="hi", notify=False)
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(TransportWsClient.connect(lv.gateway.ws_url))
                for _ in range(SUBSCRIBERS)
            ]
            for client in clients:
                await client.subscribe(TICKS, {"c": conversation.sid})
            metrics = lv.gateway.services.metrics
            for _ in range(1000):  # every subscription listens (counted once its stream does)
                if metrics.subscriptions_active._value.get() == SUBSCRIBERS:
                    break
                await asyncio.sleep(0.01)
            fanout = lv.gateway.services.fanout
            for receipt in receipts:
                receipt.planned = []
                executions, shared = fanout.executions, fanout.shared
                assert state.webhooks.emit(
                    conversation.service_sid, ON_DELIVERY_UPDATED, delivery_params(state.store, receipt)
                )
                await state.webhooks.drain()
                await lv.gateway.ingest.drain()
                frames = [await asyncio.wait_for(client.ws.recv(), 10) for client in clients]
                assert len(set(frames)) == 1, frames  # the same bytes to every subscriber (each op id is "1")
                assert (fanout.executions - executions, fanout.shared - shared) == (1, SUBSCRIBERS - 1)
                event = json.loads(frames[0])["payload"]["data"]["deliveryUpdates"]
                assert event["receipt"]["sid"] == receipt.sid
                fresh = await lv.query(QUERY, c=conversation.sid, m=message.sid)
                assert event["message"] == fresh["message"]
