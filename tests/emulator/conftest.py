"""Fixtures for the emulator's tests: a served emulator, an in-process client, a webhook receiver, the spec.

Every server binds 127.0.0.1 port 0; nothing here sleeps longer than a poll interval.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from delivery_gateway.emulator import EmulatorConfig, RunningEmulator, create_emulator_app, serve_emulator
from delivery_gateway.emulator.spec import conversations_spec

SHARED_SPEC = Path(__file__).resolve().parents[2] / "spec" / "twilio_conversations_v1.json"
SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


def is_sid(value: object, prefix: str | None = None) -> bool:
    """Twilio's SID syntax: two letters and 32 hex digits (the prefix, when given, must match)."""
    return isinstance(value, str) and bool(SID.match(value)) and (prefix is None or value.startswith(prefix))


def fast_config(**overrides) -> EmulatorConfig:
    """A seeded config whose simulator steps take milliseconds."""
    values = {"seed": 7, "step_delay": 0.002, "webhook_retry_delay": 0.001}
    values.update(overrides)
    return EmulatorConfig(**values)


@pytest.fixture(scope="session")
def spec() -> dict:
    """Twilio's full spec vendored in spec/ when present, else the subset bundled with the emulator."""
    if SHARED_SPEC.exists():
        return json.loads(SHARED_SPEC.read_text())
    return conversations_spec()


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with serve_emulator(fast_config(seed_data=True)) as running:
        yield running


@pytest.fixture
def app():
    return create_emulator_app(fast_config(seed_data=True))


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client authenticated as the emulated account."""
    state = app.state.emulator
    transport = httpx.ASGITransport(app=app)
    auth = (state.config.account_sid, state.config.auth_token)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test", auth=auth) as http:
        yield http
    await state.aclose()


@dataclass
class ReceivedWebhook:
    url: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    url: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with `fail_status` first
    fail_status: int = 500
    delay_next: int = 0  # hold this many requests for `delay` seconds first (to make the sender time out)
    delay: float = 0.0
    attempts: int = 0  # every request, failed or not

    def events(self, event_type: str | None = None) -> list[ReceivedWebhook]:
        return [w for w in self.received if event_type is None or w.params.get("EventType") == event_type]


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    """An aiohttp server on an ephemeral port recording every webhook posted to /webhooks/twilio."""
    receiver = WebhookReceiver(url="")

    async def handle(request: web.Request) -> web.Response:
        params = dict(await request.post()) if request.method == "POST" else {}
        receiver.attempts += 1
        if receiver.delay_next > 0:
            receiver.delay_next -= 1
            await asyncio.sleep(receiver.delay)
            return web.Response(status=200)
        if receiver.fail_next > 0:
            receiver.fail_next -= 1
            return web.Response(status=receiver.fail_status)
        receiver.received.append(ReceivedWebhook(str(request.url), params, dict(request.headers)))  # type: ignore[arg-type]
        return web.Response(status=200)

    server = web.Application()
    server.router.add_route("*", "/webhooks/twilio", handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/webhooks/twilio"
    yield receiver
    await runner.cleanup()
