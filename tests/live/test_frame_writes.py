"""A live hub's frames over real sockets (`create_app` under uvicorn with the gateway's WebSocket protocol, the
emulator as Twilio): written directly while a socket keeps up and negotiated no compression, through the ASGI send
otherwise (permessage-deflate, a paused transport), in order either way; past the bound, SLOW_CONSUMER as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from delivery_gateway.http.websocket import GatewayWebSocketProtocol, text_frame
from tests.live.harness import TransportWsClient
from tests.live.test_end_to_end import conversation_with_recipients, live
from tests.live.test_live_hubs import TICKS, active, until, webhook


@pytest.fixture
def direct_writes(monkeypatch) -> list[bool]:
    """Every `write_frame` answer (True: written directly), in order."""
    answers: list[bool] = []
    write_frame = GatewayWebSocketProtocol.write_frame

    def recorded(self: GatewayWebSocketProtocol, frame: bytes) -> bool:
        answers.append(write_frame(self, frame))
        return answers[-1]

    monkeypatch.setattr(GatewayWebSocketProtocol, "write_frame", recorded)
    return answers


def protocols(gateway) -> list[GatewayWebSocketProtocol]:
    """The server side of each hub subscriber's socket, in join order."""
    (hub,) = gateway.services.hubs.hubs()
    return [member.connection.outbox.write_frame.__self__ for member in hub.members.values()]


def four_receipts(lv, conversation) -> list:
    """Two messages' receipts (two recipients each): four events, one per webhook."""
    store = lv.emulator.state.store
    return [r for _ in range(2) for r in store.create_message(conversation.sid, author="a", body="hi", notify=False)[1]]


def receipt_of(frame: str | bytes) -> str:
    return json.loads(frame)["payload"]["data"]["deliveryUpdates"]["receipt"]["sid"]


@contextlib.asynccontextmanager
async def paused_and_reading(lv, conversation) -> AsyncIterator[tuple[TransportWsClient, TransportWsClient, Any]]:
    """Two plain sockets subscribed to the conversation's ticks: the first one's server side paused (as the
    transport pauses once its buffer passes the high-water mark), the second reading. Yields both clients and the
    paused server side."""
    async with (
        TransportWsClient.connect(lv.gateway.ws_url, compression=None) as paused,
        TransportWsClient.connect(lv.gateway.ws_url, compression=None) as reader,
    ):
        for client in (paused, reader):
            await client.subscribe(TICKS, {"c": conversation.sid})
        await until(lambda: active(lv.gateway) == 2, "2 subscriptions")
        server_paused, _ = protocols(lv.gateway)
        server_paused.pause_writing()
        yield paused, reader, server_paused


async def test_a_browser_offering_compression_gets_plain_frames_by_default(tmp_path, direct_writes):
    """Browsers offer permessage-deflate; unless DELIVERY_GATEWAY_WEBSOCKET_COMPRESSION is on, the gateway declines
    it, so their sockets take the shared frame directly and hold no zlib state."""
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        _, receipts = lv.emulator.state.store.create_message(conversation.sid, author="a", body="hi", notify=False)
        async with TransportWsClient.connect(gateway.ws_url) as offering:  # offers permessage-deflate
            await offering.subscribe(TICKS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 1, "1 subscription")
            (server_side,) = protocols(gateway)
            assert not server_side.conn.extensions and not offering.ws.protocol.extensions
            await webhook(lv, conversation, receipts[0])
            assert receipt_of(await asyncio.wait_for(offering.ws.recv(), 10)) == receipts[0].sid
            assert direct_writes == [True]


async def test_frames_go_straight_to_a_plain_socket_and_through_send_to_a_compressed_one(tmp_path, direct_writes):
    async with live(tmp_path, DELIVERY_GATEWAY_WEBSOCKET_COMPRESSION=True) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        _, receipts = lv.emulator.state.store.create_message(conversation.sid, author="a", body="hi", notify=False)
        async with (
            TransportWsClient.connect(gateway.ws_url, compression=None) as plain,
            TransportWsClient.connect(gateway.ws_url) as deflated,
        ):
            for client in (plain, deflated):
                await client.subscribe(TICKS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 2, "2 subscriptions")
            server_plain, server_deflated = protocols(gateway)
            assert not server_plain.conn.extensions and server_deflated.conn.extensions
            # What an idle connection no longer keeps: the handshake, a receive queue's containers.
            assert server_plain.request is None and server_plain.response is None
            assert server_plain.queue.empty() and server_plain.queue._items is None  # type: ignore[attr-defined]

            await webhook(lv, conversation, receipts[0])
            frames = [await asyncio.wait_for(c.ws.recv(), 10) for c in (plain, deflated)]
            assert frames[0] == frames[1]  # the same text, however it travelled
            assert receipt_of(frames[0]) == receipts[0].sid
            assert direct_writes == [True, False]  # join order: the plain socket, then the compressed one

            # The socket still carries everything else as before (a ping answered, a new subscription).
            await plain.ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(plain.ws.recv(), 5)) == {"type": "pong"}


async def test_a_paused_socket_gets_its_frames_in_order_once_it_drains(tmp_path, direct_writes):
    async with live(tmp_path) as lv:
        conversation = conversation_with_recipients(lv.emulator)
        receipts = four_receipts(lv, conversation)
        async with paused_and_reading(lv, conversation) as (paused, reader, server_paused):
            for receipt in receipts[:2]:
                await webhook(lv, conversation, receipt)
                assert receipt_of(await asyncio.wait_for(reader.ws.recv(), 10)) == receipt.sid  # not held up
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(paused.ws.recv(), 0.3)
            # The paused socket's first write waits in `send`; its second queues behind it (never offered directly).
            assert direct_writes == [False, True, True]

            server_paused.resume_writing()
            got = [receipt_of(await asyncio.wait_for(paused.ws.recv(), 10)) for _ in range(2)]
            assert got == [r.sid for r in receipts[:2]]
            await webhook(lv, conversation, receipts[2])
            assert receipt_of(await asyncio.wait_for(paused.ws.recv(), 10)) == receipts[2].sid
            assert direct_writes[-2:] == [True, True]  # written directly again


async def test_past_its_bound_a_paused_socket_ends_with_slow_consumer_over_real_sockets(tmp_path):
    async with live(tmp_path, DELIVERY_GATEWAY_SUBSCRIBER_QUEUE_SIZE="2") as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        receipts = four_receipts(lv, conversation)
        async with paused_and_reading(lv, conversation) as (stalled, reader, server_stalled):
            for receipt in receipts:  # one write waits, two queue behind it, the fourth is past the bound
                await webhook(lv, conversation, receipt)
                assert receipt_of(await asyncio.wait_for(reader.ws.recv(), 10)) == receipt.sid
            await until(lambda: active(gateway) == 1, "the stalled subscription to end")
            server_stalled.resume_writing()
            first, ended, complete = [json.loads(await asyncio.wait_for(stalled.ws.recv(), 10)) for _ in range(3)]
            assert first["payload"]["data"]["deliveryUpdates"]["receipt"]["sid"] == receipts[0].sid
            assert ended["type"] == "next" and ended["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
            assert complete == {"id": "1", "type": "complete"}


async def test_each_operation_on_a_plain_socket_gets_the_frame_with_its_own_id(tmp_path, direct_writes):
    """Frames are built once per operation id, not once per event: two subscriptions of one socket (ids 1 and 2)
    and another socket's (id 1) each get their own."""
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        _, receipts = lv.emulator.state.store.create_message(conversation.sid, author="a", body="hi", notify=False)
        async with (
            TransportWsClient.connect(gateway.ws_url, compression=None) as both,
            TransportWsClient.connect(gateway.ws_url, compression=None) as one,
        ):
            ids = [await both.subscribe(TICKS, {"c": conversation.sid}) for _ in range(2)]
            assert ids == ["1", "2"] and await one.subscribe(TICKS, {"c": conversation.sid}) == "1"
            await until(lambda: active(gateway) == 3, "3 subscriptions")
            await webhook(lv, conversation, receipts[0])
            frames = [json.loads(await asyncio.wait_for(both.ws.recv(), 10)) for _ in range(2)]
            assert sorted(frame["id"] for frame in frames) == ["1", "2"]
            assert json.loads(await asyncio.wait_for(one.ws.recv(), 10))["id"] == "1"
            assert {receipt_of(json.dumps(frame)) for frame in frames} == {receipts[0].sid}
            assert direct_writes == [True, True, True]


async def test_once_the_server_closed_a_socket_no_frame_is_written_after_its_close(tmp_path):
    """The server sent its close frame (a shutdown's 1001, the handler's own close) and waits for the peer's: the
    frame writer declines, so no data frame follows the close frame on the wire."""
    async with live(tmp_path) as lv:
        gateway = lv.gateway
        conversation = conversation_with_recipients(lv.emulator)
        async with TransportWsClient.connect(gateway.ws_url, compression=None) as plain:
            await plain.subscribe(TICKS, {"c": conversation.sid})
            await until(lambda: active(gateway) == 1, "1 subscription")
            (server,) = protocols(gateway)
            frame = text_frame(b'{"id":"1","type":"next","payload":{}}')
            assert server.write_frame(frame)  # open: written
            assert json.loads(await asyncio.wait_for(plain.ws.recv(), 10)) == {"id": "1", "type": "next", "payload": {}}
            await server.send({"type": "websocket.close", "code": 1001, "reason": "going away"})
            assert not server.write_frame(frame)  # closing: declined
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(plain.ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
