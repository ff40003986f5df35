"""Redis restarted mid-run under a gateway whose pub/sub and cache live on it (the ledger on SQLite).

Runs a private redis-server on an ephemeral port, so the shared Redis is never disturbed.
Never asserts timings: it waits for states with bounded polling.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator.webhook_events import delivery_params
from tests.app_support import free_port, gateway_on_emulator
from tests.redis_support import REQUIRE_ENV

pytestmark = pytest.mark.redis


class PrivateRedis:
    """A redis-server of this test's own, stoppable and restartable on the same port and data directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.directory),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    if client.ping():
                        return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.025)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"redis-server is not installed and {REQUIRE_ENV} is set")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.kill()


HISTORY = """
query($c: String!, $m: String!) {
  message(conversationSid: $c, sid: $m) { receipts { sid status history { status changedStatus } } }
}
"""


async def eventually(check, attempts: int = 100, pause: float = 0.05):
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(pause)
    raise AssertionError("condition not reached")


async def test_redis_restart_degrades_live_updates_only_and_loses_no_webhook(private_redis, tmp_path):
    backends = {f"DELIVERY_GATEWAY_{name}_URL": private_redis.url for name in ("PUBSUB", "CACHE")}
    backends["DELIVERY_GATEWAY_STORE_URL"] = f"sqlite:///{tmp_path}/ledger.sqlite3"
    async with gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, emulator={"simulate": False}, **backends) as gw:
        store = gw.emulator.state.store
        conversation_sid = next(
            sid for sid, members in store.participants.items() if any(p.channel == "whatsapp" for p in members.values())
        )
        agent = next(p.identity for p in store.participants[conversation_sid].values() if p.channel == "chat")
        message, receipts = store.create_message(conversation_sid, author=agent, body="outage")
        receipt = next(r for r in receipts if r.channel_message_sid.startswith("WA"))
        validator = RequestValidator(gw.settings.auth_token)
        url = gw.base_url + "/webhooks/twilio"

        async def post(client: httpx.AsyncClient, status: str) -> httpx.Response:
            receipt.status = status
            params = {k: str(v) for k, v in delivery_params(store, receipt).items()}
            params["EventType"] = "onDeliveryUpdated"
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            return await client.post("/webhooks/twilio", data=params, headers=headers)

        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
            assert (await post(client, "delivered")).status_code == 200
            await gw.gateway.ingest.drain()

            private_redis.kill()
            during_outage = await post(client, "read")
            assert during_outage.status_code == 200, during_outage.text  # the ledger does not need Redis
            await gw.gateway.ingest.drain()  # applied; its publish failed (logged): subscribers resume by cursor
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            checks = ready.json()["checks"]
            assert checks["ledger"] == "ok"
            assert checks["pubsub"].startswith("unavailable")
            assert checks["cache"].startswith("degraded")
            # Queries keep working: the cache degrades to misses and Twilio answers.
            query = {"query": HISTORY, "variables": {"c": conversation_sid, "m": message.sid}}
            during = await client.post("/graphql", json=query)
            assert during.status_code == 200 and during.json()["data"]["message"]["receipts"]

            private_redis.start()  # same port
            await eventually(lambda: _ok(client.get("/readyz")))
            assert (await post(client, "read")).status_code == 200  # Twilio's retry: a duplicate, harmless
            await gw.gateway.ingest.drain()

            answer = (await client.post("/graphql", json=query)).json()
            assert "errors" not in answer, answer
            entry = next(r for r in answer["data"]["message"]["receipts"] if r["sid"] == receipt.sid)
            changes = [h["status"] for h in entry["history"] if h["changedStatus"]]
            assert changes[-2:] == ["DELIVERED", "READ"]  # the webhook acknowledged during the outage is there


async def _ok(request) -> bool:
    return (await request).status_code == 200
