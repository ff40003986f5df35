"""docs/clients/python/delivery_client.py (gql) against a live gateway with a Twilio Access Token: the chat screen,
access limited to the user's conversations, and delivery updates that resume from the stored cursor after the
connection drops, with no event missed and none twice.

Drives only 127.0.0.1 servers started here.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.clients.conftest import planned_changes
from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


def load_client():
    spec = importlib.util.spec_from_file_location("delivery_client", ROOT / "docs/clients/python/delivery_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load_client()


async def test_chat_screen_with_an_access_token_shows_the_users_conversation_and_only_theirs(live_gateway):
    token = live_gateway.access_token("agent.alice")
    sid = live_gateway.conversation("order-1042")
    conversation = await client.chat_screen(live_gateway.base_url, sid, token=token)
    messages = [edge["node"] for edge in conversation["messages"]["edges"]]
    stored = sorted(live_gateway.store.messages[sid].values(), key=lambda m: m.index)[-50:]
    assert [m["sid"] for m in messages] == [m.sid for m in stored]
    assert {m["ticks"] for m in messages} <= {"PENDING", "SENT", "DELIVERED", "READ", "FAILED"}
    failed = [r for m in messages for r in m["recipients"] if r["status"] in ("FAILED", "UNDELIVERED")]
    assert failed and all(r["error"]["name"] and r["error"]["description"] for r in failed)

    with pytest.raises(TransportQueryError, match="FORBIDDEN"):
        await client.chat_screen(live_gateway.base_url, live_gateway.conversation("reminders"), token=token)


async def test_delivery_updates_resume_from_the_stored_cursor_after_a_dropped_connection(live_gateway, tmp_path):
    token = live_gateway.access_token("agent.alice")
    sid = live_gateway.conversation("order-1042")
    emulator = live_gateway.env.emulator.state
    port = int(live_gateway.base_url.rsplit(":", 1)[1])
    seen: list[dict] = []
    resumed_from: list[str | None] = []
    arrived = asyncio.Event()

    async def collect(update: dict) -> None:
        seen.append(update)
        arrived.set()

    async def wait_for(count: int) -> None:
        async with asyncio.timeout(20):
            while len(seen) < count:
                arrived.clear()
                await arrived.wait()

    cursors = client.CursorFile(tmp_path / "cursor.txt")
    async with TcpProxy.serving(port) as proxy:
        follower = asyncio.create_task(
            client.follow_delivery_updates(
                proxy.url, sid, collect, cursors, token=token, retry_delay=0.2, on_reconnect=resumed_from.append
            )
        )
        try:
            await asyncio.sleep(0.5)  # subscribed
            _, receipts = emulator.store.create_message(sid, author="agent.alice", body="one")
            first = planned_changes(receipts)  # per SMS recipient: sent, delivered; WhatsApp: sent, delivered, read
            await emulator.simulator.advance_all()
            await wait_for(len(first))
            stored_before_drop = cursors.load()
            assert stored_before_drop == seen[-1]["cursor"]

            proxy.refuse()
            proxy.drop()
            _, receipts = emulator.store.create_message(sid, author="agent.alice", body="two, while away")
            second = planned_changes(receipts)
            await emulator.simulator.advance_all()
            await asyncio.sleep(0.5)  # the client retries against a refusing network
            proxy.accept()
            await wait_for(len(first) + len(second))
            await asyncio.sleep(0.3)  # nothing more must come
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    assert resumed_from and resumed_from[-1] == stored_before_drop
    cursors_seen = [int(update["cursor"]) for update in seen]
    assert cursors_seen == sorted(set(cursors_seen)), "an event was delivered twice or out of order"
    received = [(update["receipt"]["sid"], update["receipt"]["status"]) for update in seen]
    assert sorted(received) == sorted(first + second)  # what happened while away was replayed, nothing twice
    assert cursors.load() == seen[-1]["cursor"]
