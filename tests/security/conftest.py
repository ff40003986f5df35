"""Fixtures for the security suite: settings with known keys, token minting, the toy app over real sockets.

Test support only; never talks to Twilio, never reads the developer's environment or `.env`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from delivery_gateway.kernel.settings import Settings
from tests.app_support import serve_app
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


@pytest.fixture
async def serve() -> AsyncIterator[Callable]:
    """Start ASGI apps on ephemeral ports (lifespan included) for the test; returns each one's host:port."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(app) -> str:
            base_url = await stack.enter_async_context(serve_app(app))
            return base_url.removeprefix("http://")

        yield start
