"""Test support: the real app (`create_app`) served by uvicorn on an ephemeral port, against the emulator.

Test helper only: never imported by the gateway. Everything binds to 127.0.0.1 with OS-chosen ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from delivery_gateway.app import Gateway, create_app
from delivery_gateway.emulator import EmulatorConfig, RunningEmulator
from delivery_gateway.emulator.server import serve_emulator
from delivery_gateway.http.websocket import GatewayWebSocketProtocol
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.kernel.sids import ACCOUNT, new_sid
from delivery_gateway.upstream.errors import UpstreamUnavailable
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoUpstream:
    """The upstream of tests that must never reach Twilio: starting and closing are free, any call fails as an
    unreachable Twilio would (so what tolerates an outage, like a subscription's existence check, goes on)."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        async def refuse(*args: Any, **kwargs: Any) -> Any:
            raise UpstreamUnavailable(f"unexpected upstream call: {name}")

        return refuse


NO_UPSTREAM = NoUpstream()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, upstream: Any = NO_UPSTREAM) -> AsyncIterator[Starlette]:
    """`create_app` with its lifespan run in-process, for `httpx.ASGITransport` (which runs none).

    `upstream=None` lets the app build its real UpstreamClient from the settings.
    """
    app = create_app(settings, upstream=upstream)
    gateway: Gateway = app.state.gateway
    await gateway.start()
    try:
        yield app
    finally:
        await gateway.close()


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, port: int | None = None, *, lifespan: str = "on", websocket_compression: bool = False
) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 until the block exits; yields its base URL. permessage-deflate is accepted
    only with `websocket_compression` (DELIVERY_GATEWAY_WEBSOCKET_COMPRESSION), as `serve` runs it."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            ws=GatewayWebSocketProtocol,  # as `serve` runs it (ops/runner.py)
            ws_per_message_deflate=websocket_compression,
        )
    )
    task = asyncio.create_task(server.serve(), name="gateway-uvicorn")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("gateway server stopped during startup")
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class GatewayOnEmulator:
    base_url: str
    app: Starlette
    emulator: RunningEmulator
    settings: Settings

    @property
    def gateway(self) -> Gateway:
        return self.app.state.gateway

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/graphql"


@contextlib.asynccontextmanager
async def gateway_on_emulator(
    *, emulator: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[GatewayOnEmulator]:
    """A seeded emulator (fast simulator) and the gateway pointed at it, webhooks wired for every service.

    `settings` are Settings fields by env name (e.g. DELIVERY_GATEWAY_DEMO_MODE=True); the defaults keep every
    backend in memory so tests share nothing.
    """
    sid, token = new_sid(ACCOUNT), new_sid("XX")[2:]
    config = {
        "account_sid": sid,
        "auth_token": token,
        "seed": 7,
        "seed_data": True,
        "step_delay": 0.002,
        "webhook_retry_delay": 0.001,
        **(emulator or {}),
    }
    async with serve_emulator(EmulatorConfig(**config)) as running:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        values = {
            "TWILIO_ACCOUNT_SID": sid,
            "TWILIO_AUTH_TOKEN": token,
            "DELIVERY_GATEWAY_TWILIO_BASE_URL": running.base_url,
            "DELIVERY_GATEWAY_PUBLIC_URL": base,
            "DELIVERY_GATEWAY_STORE_URL": "memory://",
            "DELIVERY_GATEWAY_CACHE_URL": "memory://",
            "DELIVERY_GATEWAY_PUBSUB_URL": "memory://",
            **settings,
        }
        gateway_settings = Settings(_env_file=None, **values)
        for service_sid in running.state.store.services:
            running.state.set_webhook(
                post_webhook_url=f"{base}/webhooks/twilio", filters=WEBHOOK_FILTERS, service_sid=service_sid
            )
        app = create_app(gateway_settings)
        async with serve_app(app, port) as url:
            yield GatewayOnEmulator(url, app, running, gateway_settings)
