"""Fixtures of the client-example tests: a live gateway on the emulator that accepts Twilio Access Tokens, and a
token minted the way an app's backend mints one (the twilio SDK's AccessToken with a ChatGrant).

Never reaches anything but 127.0.0.1.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from tests.app_support import GatewayOnEmulator, gateway_on_emulator

API_KEY_SID = "SK" + "5e" * 16
API_KEY_SECRET = secrets.token_hex(16)
INTERNAL_KEY = secrets.token_hex(16)  # an internal service's bearer key (DELIVERY_GATEWAY_API_KEYS)
KNOBS = {"simulate": False, "failure_rate": 0.0, "whatsapp_read_rate": 1.0, "chat_read_rate": 0.0}


def planned_changes(receipts) -> list[tuple[str, str]]:
    """(receipt SID, STATUS) of every status the emulator's receipts take: the current one, then the planned ones.
    A subscription that misses nothing and repeats nothing receives exactly these."""
    return sorted((r.sid, status.upper()) for r in receipts for status in [r.status, *(s for s, _ in r.planned)])


@dataclass
class LiveGateway:
    env: GatewayOnEmulator

    @property
    def base_url(self) -> str:
        return self.env.base_url

    @property
    def api_key(self) -> str:
        """The bearer key of an internal service (reports, the service-wide stream)."""
        return INTERNAL_KEY

    @property
    def store(self):
        return self.env.emulator.state.store

    def conversation(self, unique_name: str) -> str:
        return next(c.sid for c in self.store.conversations.values() if c.unique_name == unique_name)

    def access_token(self, identity: str, *, ttl: int = 3600) -> str:
        """What an app's backend hands its signed-in user: an Access Token with a Conversations (Chat) grant."""
        token = AccessToken(
            self.env.settings.twilio_account_sid, API_KEY_SID, API_KEY_SECRET, identity=identity, ttl=ttl
        )
        token.add_grant(ChatGrant(service_sid=self.env.emulator.state.default_service_sid))
        return token.to_jwt()


@pytest.fixture
async def live_gateway() -> AsyncIterator[LiveGateway]:
    """Not in demo mode: callers need an Access Token signed with the configured API key, or the internal key."""
    # One API key in both roles, each named explicitly: it signs the Access Tokens (the signing keys) and, like on
    # Twilio, authenticates the gateway's REST calls (TWILIO_API_KEY/TWILIO_API_SECRET).
    emulator = {**KNOBS, "api_keys": {API_KEY_SID: API_KEY_SECRET}}
    async with gateway_on_emulator(
        emulator=emulator,
        TWILIO_API_KEY=API_KEY_SID,
        TWILIO_API_SECRET=API_KEY_SECRET,
        DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{API_KEY_SID}:{API_KEY_SECRET}",
        DELIVERY_GATEWAY_API_KEYS=INTERNAL_KEY,
    ) as env:
        yield LiveGateway(env)
