"""docs/clients/node/delivery-client.mjs (Node.js, graphql-ws + ws) against a live gateway with a Twilio Access
Token minted here as an app's backend would: the chat screen, then delivery updates that resume from the stored
cursor after the connection drops, with no event missed and none twice.

Skips only when Node.js is absent and DELIVERY_GATEWAY_REQUIRE_NODE is unset (CI sets it). Installs the example's
pinned packages with `npm ci` into docs/clients/node/node_modules (not in git). Drives only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import planned_changes
from tests.tcp_proxy import TcpProxy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "clients" / "node"
REQUIRE_ENV = "DELIVERY_GATEWAY_REQUIRE_NODE"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"node/npm not found and {REQUIRE_ENV} is set")
        pytest.skip("Node.js is not installed")
    installed = EXAMPLE / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (EXAMPLE / "package-lock.json").stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLE, check=True, capture_output=True, timeout=300
        )
    return node


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, seconds: float = 20) -> dict:
        raw = await asyncio.wait_for(self.process.stdout.readline(), seconds)
        if not raw:
            error = await self.process.stderr.read()
            raise AssertionError(f"the Node client exited: {error.decode()}")
        return json.loads(raw)

    async def until(self, kind: str, seconds: float = 20) -> dict:
        while True:
            message = await self.line(seconds)
            if message["type"] == "error":
                raise AssertionError(message)
            if message["type"] == kind:
                return message


def _holds(cursor_file: Path, cursor: str) -> bool:
    return cursor_file.exists() and cursor_file.read_text() == cursor


async def wait_for_cursor(cursor_file: Path, cursor: str, seconds: float = 5) -> None:
    """The Node process writes the file after handling an event: poll it (there is nothing to await)."""
    async with asyncio.timeout(seconds):
        while not await asyncio.to_thread(_holds, cursor_file, cursor):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def start(node: str, url: str, sid: str, token: str, cursor_file: Path, max_events: int = 0) -> NodeClient:
    process = await asyncio.create_subprocess_exec(
        node,
        "delivery-client.mjs",
        f"--url={url}",
        f"--conversation={sid}",
        f"--token={token}",
        f"--cursor-file={cursor_file}",
        f"--max-events={max_events}",
        cwd=EXAMPLE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return NodeClient(process)


async def test_node_client_with_an_access_token_follows_deliveries_through_a_dropped_connection(
    node, live_gateway, tmp_path
):
    sid = live_gateway.conversation("order-1042")
    emulator = live_gateway.env.emulator.state
    port = int(live_gateway.base_url.rsplit(":", 1)[1])
    token = live_gateway.access_token("agent.alice")
    cursor_file = tmp_path / "cursor.txt"
    async with TcpProxy.serving(port) as proxy:
        client = await start(node, proxy.url, sid, token, cursor_file)
        try:
            chat = await client.until("chat")
            shown = [edge["node"]["sid"] for edge in chat["conversation"]["messages"]["edges"]]
            stored = sorted(live_gateway.store.messages[sid].values(), key=lambda m: m.index)[-50:]
            assert shown == [m.sid for m in stored]
            await client.until("subscribed")
            await asyncio.sleep(0.5)  # the subscribe message reaches the gateway

            _, receipts = emulator.store.create_message(sid, author="agent.alice", body="one")
            first = planned_changes(receipts)
            await emulator.simulator.advance_all()
            events = [(await client.until("event"))["update"] for _ in first]
            await wait_for_cursor(cursor_file, events[-1]["cursor"])  # written right after the event is handled

            proxy.refuse()
            proxy.drop()
            _, receipts = emulator.store.create_message(sid, author="agent.alice", body="two, while away")
            second = planned_changes(receipts)
            await emulator.simulator.advance_all()
            await asyncio.sleep(0.5)
            proxy.accept()
            resumed = await client.until("resuming")
            while resumed["after"] is None or resumed["after"] != events[-1]["cursor"]:
                resumed = await client.until("resuming")  # retries while the network refused come first
            events += [(await client.until("event"))["update"] for _ in second]
            with pytest.raises(TimeoutError):  # and nothing more
                await client.until("event", seconds=0.5)
        finally:
            if client.process.returncode is None:
                client.process.kill()
                await client.process.wait()

    cursors = [int(event["cursor"]) for event in events]
    assert cursors == sorted(set(cursors)), "an event came twice or out of order"
    received = [(event["receipt"]["sid"], event["receipt"]["status"]) for event in events]
    assert sorted(received) == sorted(first + second)  # what happened while away was replayed, nothing twice


async def test_node_client_reports_a_refused_token(node, live_gateway, tmp_path):
    sid = live_gateway.conversation("order-1042")
    expired = live_gateway.access_token("agent.alice", ttl=-60)
    client = await start(node, live_gateway.base_url, sid, expired, tmp_path / "cursor.txt", max_events=1)
    message = await client.line()
    assert message["type"] == "error" and "TOKEN_EXPIRED" in message["message"]  # time to fetch a fresh token
    assert expired not in json.dumps(message)
    assert await asyncio.wait_for(client.process.wait(), 15) == 1
