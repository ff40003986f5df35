"""Graceful shutdown's first step on the app as deployed: subscriptions close with 1001, event streams end.

The gateway runs in-process on an ephemeral port against the emulator; `Gateway.close_streams()` is what the
process runner calls on SIGTERM (tests/test_cli_operators.py covers the whole process).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from tests.app_support import gateway_on_emulator

API_KEY = "drain-test-internal-key-0123456789"
TICKS = "subscription Ticks($c: String!) { deliveryUpdates(conversationSid: $c) { cursor } }"


def a_conversation(emulator) -> str:
    store = emulator.state.store
    return next(c.sid for c in store.conversations.values() if c.service_sid == store.default_service.sid)


async def open_websocket(url: str, conversation: str):
    ws = await websockets.connect(url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {API_KEY}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": TICKS, "variables": {"c": conversation}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def read_stream(client: httpx.AsyncClient, conversation: str, opened: asyncio.Event) -> str:
    body = {"query": TICKS, "variables": {"c": conversation}}
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {API_KEY}"}
    received = []
    async with client.stream("POST", "/graphql", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        opened.set()
        async for chunk in response.aiter_text():
            received.append(chunk)
    return "".join(received)


async def test_close_streams_closes_websockets_with_1001_and_ends_event_streams():
    async with gateway_on_emulator(emulator={"simulate": False}, DELIVERY_GATEWAY_API_KEYS=API_KEY) as g:
        conversation = a_conversation(g.emulator)
        metrics = g.gateway.services.metrics
        ws = await open_websocket(g.ws_url, conversation)
        async with httpx.AsyncClient(base_url=g.base_url, timeout=10) as client:
            opened = asyncio.Event()
            stream = asyncio.create_task(read_stream(client, conversation, opened))
            await asyncio.wait_for(opened.wait(), 5)
            for _ in range(100):  # both subscriptions are running
                if metrics.sample("delivery_gateway_subscriptions_active") == 2:
                    break
                await asyncio.sleep(0.02)
            assert metrics.sample("delivery_gateway_subscriptions_active") == 2
            assert len(g.gateway.streams) == 2

            closed = await g.gateway.close_streams(grace=5)

            assert closed == 2
            text = await asyncio.wait_for(stream, 5)  # the stream ended cleanly: no error while reading it
            assert "event: complete" not in text  # not "completed": the client should reconnect and resume
            assert ": server going away" in text
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("the WebSocket was not closed")
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and (exc.rcvd.code, exc.rcvd.reason) == (1001, "going away")
        assert len(g.gateway.streams) == 0
        assert metrics.sample("delivery_gateway_subscriptions_active") == 0

        # Still answering ordinary requests, and a socket opened while shutting down is told to go at once.
        async with httpx.AsyncClient(base_url=g.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
        late = await websockets.connect(g.ws_url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
        try:
            await asyncio.wait_for(late.recv(), 5)
            raise AssertionError("a socket accepted while shutting down stayed open")
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1001


async def test_close_streams_with_nothing_open_is_a_no_op():
    async with gateway_on_emulator(emulator={"simulate": False}, DELIVERY_GATEWAY_API_KEYS=API_KEY) as g:
        assert await g.gateway.close_streams() == 0
        async with httpx.AsyncClient(base_url=g.base_url) as client:
            query = {"query": "{ __typename }"}
            answer = await client.post("/graphql", json=query, headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.json() == {"data": {"__typename": "Query"}}
