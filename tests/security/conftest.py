"""Fixtures for the security suite: settings with known keys, token minting, the toy app over real sockets.

Test support only; never talks to Twilio, never reads the developer's environment or `.env`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from delivery_gateway.settings import Settings
from tests.security import toy

ACCOUNT = "AC" + "a1" * 16
OTHER_ACCOUNT = "AC" + "b2" * 16
KEY = "SK" + "c3" * 16
SECRET = "s" * 40
OLD_KEY = "SK" + "d4" * 16
OLD_SECRET = "o" * 40
SERVICE = "IS" + "e5" * 16
OTHER_SERVICE = "IS" + "f6" * 16
API_KEY = "internal-key-0123456789abcdef"
CONV_ALICE = "CH" + "11" * 16
CONV_BOB = "CH" + "22" * 16


def make_settings(**overrides) -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_KEY": KEY,
        "TWILIO_API_SECRET": SECRET,
        "DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS": f"{OLD_KEY}:{OLD_SECRET}",
        "DELIVERY_GATEWAY_API_KEYS": API_KEY,
        "DELIVERY_GATEWAY_WS_INIT_TIMEOUT": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def mint(
    identity: str = "alice",
    *,
    key: str = KEY,
    secret: str = SECRET,
    account: str = ACCOUNT,
    service: str | None = SERVICE,
    ttl: int = 3600,
    nbf: int | None = None,
) -> str:
    token = AccessToken(account, key, secret, identity=identity, ttl=ttl, nbf=nbf)
    if service is not None:
        token.add_grant(ChatGrant(service_sid=service))
    return token.to_jwt()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture(autouse=True)
def _toy_world() -> None:
    toy.MEMBERS.clear()
    toy.MEMBERS[CONV_ALICE] = {"alice"}
    toy.MEMBERS[CONV_BOB] = {"bob"}
    toy.UPSTREAM_CALLS.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def serve() -> AsyncIterator[Callable]:
    """Start an ASGI app on an ephemeral port with uvicorn; returns its base URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task]] = []

    async def start(app) -> str:
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 5
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.01)
        servers.append((server, task))
        return f"127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
