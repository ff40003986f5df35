"""Fixtures for the security suite: settings with known keys, token minting, and the gateway as deployed
(`create_app`) over the GraphQL suite's fake upstream, in-process or on a real socket.

Test support only; never talks to Twilio, never reads the developer's environment or `.env`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from delivery_gateway import Settings, create_app
from tests.app_support import serve_app
from tests.graphql.fake_upstream import FakeConversations

ACCOUNT = "AC" + "a1" * 16
OTHER_ACCOUNT = "AC" + "b2" * 16
KEY = "SK" + "c3" * 16
SECRET = "s" * 40
OLD_KEY = "SK" + "d4" * 16
OLD_SECRET = "o" * 40
SERVICE = "IS" + "e5" * 16
OTHER_SERVICE = "IS" + "f6" * 16
API_KEY = "internal-key-0123456789abcdef"
CONV_ALICE = "CH" + "11" * 16  # alice, bob and an SMS binding
CONV_MALLORY = "CH" + "22" * 16  # mallory only


def make_settings(**overrides: Any) -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS": f"{KEY}:{SECRET},{OLD_KEY}:{OLD_SECRET}",
        "DELIVERY_GATEWAY_API_KEYS": API_KEY,
        "DELIVERY_GATEWAY_WS_INIT_TIMEOUT": 2,
        "DELIVERY_GATEWAY_STORE_URL": "memory://",
        "DELIVERY_GATEWAY_CACHE_URL": "memory://",
        "DELIVERY_GATEWAY_PUBSUB_URL": "memory://",
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


def make_world() -> FakeConversations:
    """Two conversations: CONV_ALICE (alice, bob, an SMS binding; three messages) and CONV_MALLORY."""
    fake = FakeConversations()
    own = fake.add_conversation("alice and bob", sid=CONV_ALICE)
    alice = fake.add_chat(own, "alice")
    bob = fake.add_chat(own, "bob")
    fake.add_binding(own, "sms", "+15551230001")
    for index in range(3):
        fake.add_message(own, alice if index % 2 else bob, f"m{index}")
    other = fake.add_conversation("mallory's secret chat", sid=CONV_MALLORY)
    fake.add_chat(other, "mallory")
    return fake


def gateway_app(fake: FakeConversations, **overrides: Any) -> Starlette:
    """The gateway as deployed (`create_app`: guards, auth, limits, the real schema) over `fake`."""
    return create_app(make_settings(**overrides), upstream=fake)


async def post(
    app: Starlette,
    body: Any,
    token: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    path: str = "/graphql",
) -> httpx.Response:
    """One POST through the app in-process (httpx's ASGI transport)."""
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers or {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        return await client.post(path, json=body, headers=sent)


@dataclass
class World:
    fake: FakeConversations
    build: Callable[..., Starlette]  # build(**settings overrides) -> create_app(...) over `fake`
    started: list[Starlette] = field(default_factory=list)

    async def start(self, **overrides: Any) -> Starlette:
        """`build`, with the gateway started (ledger, pub/sub, ingest) as its lifespan would; the `world` fixture
        closes it. Needed by operations that use the ledger (resendMessage); httpx's transport runs no lifespan."""
        app = self.build(**overrides)
        await app.state.gateway.start()
        self.started.append(app)
        return app


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    fake = make_world()
    built = World(fake, lambda **overrides: gateway_app(fake, **overrides))
    try:
        yield built
    finally:
        for app in built.started:
            await app.state.gateway.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Awaitable[str]]]:
    """Start ASGI apps on ephemeral ports (lifespan included) for the test; returns each one's host:port."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(app: Any) -> str:
            base_url = await stack.enter_async_context(serve_app(app))
            return base_url.removeprefix("http://")

        yield start
