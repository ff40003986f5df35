"""What callers learn when Twilio fails: a generic message and a code, never Twilio's host, port or resource paths;
the details go to the log under the request's correlation id, which the caller also gets.

The gateway as deployed (`create_app` with its real UpstreamClient) against an unreachable port and the emulator.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from delivery_gateway.kernel.settings import Settings
from tests.app_support import free_port, gateway_on_emulator, running_app

API_KEY = "upstream-errors-key"
CONVERSATION = "query($c: String!) { conversation(sid: $c) { sid messages(last: 2) { edges { node { sid } } } } }"
MISSING = "CH" + "7" * 32


async def ask(app_or_url, variables: dict, request_id: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Request-ID": request_id}
    if isinstance(app_or_url, str):
        async with httpx.AsyncClient(base_url=app_or_url, timeout=30) as client:
            return await client.post("/graphql", json={"query": CONVERSATION, "variables": variables}, headers=headers)
    transport = httpx.ASGITransport(app=app_or_url)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        return await client.post("/graphql", json={"query": CONVERSATION, "variables": variables}, headers=headers)


async def test_an_unreachable_twilio_is_not_named_to_callers(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    settings = Settings(
        _env_file=None,
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_AUTH_TOKEN="token",
        DELIVERY_GATEWAY_TWILIO_BASE_URL=f"http://127.0.0.1:{port}",
        DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=0,
        DELIVERY_GATEWAY_API_KEYS=API_KEY,
        DELIVERY_GATEWAY_STORE_URL="memory://",
    )
    with caplog.at_level(logging.INFO):
        async with running_app(settings, upstream=None) as app:
            response = await ask(app, {"c": MISSING}, "req-unreachable-1")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["extensions"]["correlationId"] == "req-unreachable-1"
    assert str(port) not in response.text and "127.0.0.1" not in response.text and "/v1/" not in response.text
    assert "Twilio could not be reached" in error["message"]
    logged = [r.getMessage() for r in caplog.records if "req-unreachable-1" in r.getMessage()]
    assert logged and any(str(port) in line or "Cannot connect" in line for line in logged), caplog.text


async def test_a_404_names_the_resource_not_its_path(caplog: pytest.LogCaptureFixture) -> None:
    async with gateway_on_emulator(emulator={"seed_data": False}, DELIVERY_GATEWAY_API_KEYS=API_KEY) as gw:
        host = gw.settings.twilio_base_url
        with caplog.at_level(logging.INFO):
            response = await ask(gw.base_url, {"c": MISSING}, "req-missing-1")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "NOT_FOUND" and error["extensions"]["correlationId"] == "req-missing-1"
    assert error["message"] == "Not found: Twilio has no such conversation."
    assert host.split("//")[1] not in response.text and "/Conversations/" not in response.text
    assert any("req-missing-1" in r.getMessage() and "/v1/Conversations/" in r.getMessage() for r in caplog.records)
