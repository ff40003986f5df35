"""Live hubs end to end (`create_app` under uvicorn, the emulator as Twilio): WebSocket subscribers of one group share
ONE pub/sub subscription and ONE execution per event, get the same frame, hold little while idle, and a departing
subscriber leaves no trace; a result with errors is executed again for each subscriber. (A socket that does not
read: tests/graphql/live/test_outbox.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import tracemalloc

from delivery_gateway.emulator.webhook_events import ON_DELIVERY_UPDATED, delivery_params
from delivery_gateway.graphql.message import resolvers as message_resolvers
from delivery_gateway.pubsub import conversation_channel
from delivery_gateway.upstream.errors import UpstreamUnavailable
from tests.live.harness import Gateway, TransportWsClient, apply_delivery
from tests.live.test_end_to_end import conversation_with_recipients, live

TICKS = """
subscription Ticks($c: String!) {
  deliveryUpdates(conversationSid: $c) {
    cursor previousStatus
    receipt { sid status errorCode error { name } }
    message { sid ticks delivery { total delivered read failed } }
  }
}"""
CURSORS = "subscription($c: String!) { deliveryUpdates(conversationSid: $c) { cursor receipt { sid status } } }"
RESUME = "subscription($c: String!, $a: String) { deliveryUpdates(conversationSid: $c, after: $a) { cursor } }"
QUERY = """
query($c: String!, $m: String!) {
  message(conversationSid: $c, sid: $m) { sid ticks delivery { total delivered read failed } }
}"""


def active(gateway: Gateway) -> float:
    return gateway.services.metrics.subscriptions_active._value.get()


async def until(check, what: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def webhook(lv, conversation, receipt) -> None:
    state = lv.emulator.state
    receipt.planned = []
    assert state.webhooks.emit(conversation.service_sid, ON_DELIVERY_UPDATED, delivery_params(state.store, receipt))
    await state.webhooks.drain()
    await lv.gateway.ingest.drain()


async def test_a_group_shares_one_stream_and_one_execution_and_each_gets_the_same_frame(tmp_path):
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        services = gateway.services
        conversation = conversation_with_recipients(lv.emulator)
        message, receipts = lv.emulator.state.store.create_message(
            conversation.sid, author="agent", body="hi", notify=False
        )
        channel = conversation_channel(conversation.sid)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(TransportWsClient.connect(gateway.ws_url)) for _ in range(5)]
            for client in clients:
                await client.subscribe(TICKS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 5, "5 subscriptions")
            assert services.pubsub.subscriber_count(channel) == 1  # one stream for the five
            assert len(services.hubs) == 1 and len(services.hubs.hubs()[0]) == 5
            # A resume replays on its own: a stream of its own, outside the hub.
            resumer = await stack.enter_async_context(TransportWsClient.connect(gateway.ws_url))
            await resumer.subscribe(RESUME, {"c": conversation.sid, "a": str(await services.ledger.last_seq())})
            await until(lambda: active(gateway) == 6, "the resume")
            assert services.pubsub.subscriber_count(channel) == 2 and len(services.hubs) == 1

            executions = services.fanout.executions
            await webhook(lv, conversation, receipts[0])
            frames = [await asyncio.wait_for(client.ws.recv(), 10) for client in clients]
            assert len(set(frames)) == 1, frames  # byte-identical (each client's op id is "1")
            event = json.loads(frames[0])
            assert event["type"] == "next" and event["id"] == "1"
            update = event["payload"]["data"]["deliveryUpdates"]
            assert update["receipt"]["sid"] == receipts[0].sid
            assert update["message"] == (await lv.query(QUERY, c=conversation.sid, m=message.sid))["message"]
            resumed = await resumer.next()
            assert resumed["payload"]["data"]["deliveryUpdates"]["cursor"] == update["cursor"]
            # Counted once both have run (the resume's own stream may answer after the hub's frames).
            assert services.fanout.executions - executions == 1 + 1  # the hub's, and the resume's own


async def test_the_hub_goes_with_its_last_subscriber(tmp_path):
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        services = gateway.services
        conversation = conversation_with_recipients(lv.emulator)
        channel = conversation_channel(conversation.sid)
        async with TransportWsClient.connect(gateway.ws_url) as first:
            async with TransportWsClient.connect(gateway.ws_url, close_timeout=0.1) as second:
                one = await first.subscribe(CURSORS, {"c": conversation.sid})
                await second.subscribe(CURSORS, {"c": conversation.sid})
                await until(lambda: active(gateway) == 2, "2 subscriptions")
            # `second` closed its socket: it left the hub, the hub stays for `first`.
            await until(lambda: active(gateway) == 1, "the closed socket to leave")
            assert len(services.hubs) == 1 and services.pubsub.subscriber_count(channel) == 1
            await first.complete(one)
            await until(lambda: active(gateway) == 0, "`complete` to end the subscription")
            await until(lambda: len(services.hubs) == 0, "the hub to go")
            await until(lambda: services.pubsub.subscriber_count(channel) == 0, "its pub/sub subscription to close")
            # The id is free again, and a new hub serves it.
            payload = {"query": CURSORS, "variables": {"c": conversation.sid}}
            await first.ws.send(json.dumps({"id": one, "type": "subscribe", "payload": payload}))
            await until(lambda: active(gateway) == 1, "the new subscription")
            await apply_delivery(gateway, conversation.sid)
            assert (await first.next())["id"] == one


async def test_a_result_with_errors_is_executed_again_for_each_subscriber(tmp_path, monkeypatch):
    """The hub's execution fails upstream once: the failure is not shared; each subscriber executes the event as
    itself (authorized as itself) and gets a result without the failure. Those executions are grouped as any are
    (graphql/live/fanout.py): the first runs, the others take its result, which has no errors."""
    real = message_resolvers.message
    failures = [1]

    async def once_unavailable(*args, **kwargs):
        if failures:
            failures.pop()
            raise UpstreamUnavailable("Twilio is down for a moment")
        return await real(*args, **kwargs)

    monkeypatch.setattr(message_resolvers, "message", once_unavailable)
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        message, receipts = lv.emulator.state.store.create_message(
            conversation.sid, author="agent", body="hi", notify=False
        )
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(TransportWsClient.connect(gateway.ws_url)) for _ in range(3)]
            for client in clients:
                await client.subscribe(TICKS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 3, "3 subscriptions")
            fanout = gateway.services.fanout
            executions, shared = fanout.executions, fanout.shared
            await webhook(lv, conversation, receipts[0])
            events = [await client.next() for client in clients]
            assert not failures  # the hub's execution met the failure
            for event in events:
                assert "errors" not in event["payload"], event
                assert event["payload"]["data"]["deliveryUpdates"]["message"]["sid"] == message.sid
            assert (fanout.executions - executions, fanout.shared - shared) == (1 + 1, 2)
            assert len(gateway.services.hubs) == 1  # and the hub goes on


async def test_an_idle_subscriber_holds_little_of_the_app(tmp_path):
    """tracemalloc over N idle hub subscribers: what the app's layers (Starlette, Strawberry, graphql-core, the
    gateway) keep per subscription, apart from uvicorn's connection itself (what a bare WebSocket holds as well)."""
    n = 40
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        async with TransportWsClient.connect(gateway.ws_url) as warm:  # imports, caches, the hub's own state
            await warm.subscribe(CURSORS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 1, "the first subscription")
            gc.collect()
            tracemalloc.start(25)
            try:
                before = tracemalloc.take_snapshot()
                async with contextlib.AsyncExitStack() as stack:
                    for _ in range(n):
                        client = await stack.enter_async_context(TransportWsClient.connect(gateway.ws_url))
                        await client.subscribe(CURSORS, {"c": conversation.sid})
                    await until(lambda: active(gateway) == n + 1, f"{n} more subscriptions")
                    await asyncio.sleep(0.2)
                    gc.collect()
                    after = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
        # Allocated by the app's own code (the allocating line is in one of these packages), not by uvicorn or
        # the websockets protocol it serves the app with.
        app_side = ("/delivery_gateway/", "/strawberry/", "/starlette/", "/graphql/")
        held = sum(
            stat.size_diff
            for stat in after.compare_to(before, "lineno")
            if any(part in stat.traceback[0].filename for part in app_side)
        )
        per_subscriber = held / n
        # About 9 KB: Starlette's and Strawberry's objects for any WebSocket, the middleware frames, the connection's
        # context and the subscription's entry. A subscription with a stream, task and generators of its own (as
        # before hubs) held several times that.
        assert per_subscriber < 12 * 1024, f"{per_subscriber:.0f} bytes of app state per idle subscriber"
