"""The readiness check of the Twilio credentials: at most one HTTP attempt a minute, and only a refusal fails.

Against a scripted server (exact attempt counts through the real client) and through `/readyz` of the app as
deployed over a counting fake; never reaches Twilio.
"""

from __future__ import annotations

import asyncio

import httpx

from delivery_gateway.app import create_app
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.backoff import RetryPolicy
from delivery_gateway.upstream.client import UpstreamClient
from delivery_gateway.upstream.errors import UpstreamUnauthorized
from delivery_gateway.upstream.probe import CredentialsProbe
from tests.graphql.fake_upstream import FakeConversations
from tests.upstream import payloads as p
from tests.upstream.scripted import Reply, serve_scripted

CONVERSATIONS = "/v1/Conversations"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(url: str) -> UpstreamClient:
    settings = Settings(
        _env_file=None, TWILIO_ACCOUNT_SID=p.ACCOUNT, TWILIO_AUTH_TOKEN="t", DELIVERY_GATEWAY_TWILIO_BASE_URL=url
    )
    return UpstreamClient(settings, retry_policy=RetryPolicy(max_retries=3, base=0.001, cap=0.01))


async def test_one_call_a_minute_however_often_and_concurrently_it_is_asked():
    async with serve_scripted() as server:
        server.script(CONVERSATIONS, Reply(200, p.page("conversations", [], base=server.url, path=CONVERSATIONS)))
        clock = Clock()
        async with client_for(server.url) as upstream:
            probe = CredentialsProbe(upstream, clock=clock)
            states = await asyncio.gather(*(probe.check() for _ in range(50)))
            assert set(states) == {"ok"}
            assert server.count(CONVERSATIONS) == 1
            clock.now += 59.9
            assert await probe.check() == "ok"
            assert server.count(CONVERSATIONS) == 1
            clock.now += 0.2
            assert await probe.check() == "ok"
            assert server.count(CONVERSATIONS) == 2
            assert server.queries[-1]["PageSize"] == "1"


async def test_a_twilio_outage_costs_one_attempt_and_degrades_without_failing():
    async with serve_scripted() as server:
        server.script(CONVERSATIONS, Reply(503, {"code": 20500, "message": "down", "status": 503}))
        async with client_for(server.url) as upstream:
            state = await CredentialsProbe(upstream).check()
            assert state == "degraded: UpstreamUnavailable (HTTP 503)"
            assert server.count(CONVERSATIONS) == 1  # the client would have retried 3 times for a query


async def test_refused_credentials_make_it_unavailable():
    async with serve_scripted() as server:
        server.script(CONVERSATIONS, Reply(401, {"code": 20003, "message": "Authenticate", "status": 401}))
        async with client_for(server.url) as upstream:
            assert await CredentialsProbe(upstream).check() == "unavailable: Twilio refused the credentials (HTTP 401)"
            assert server.count(CONVERSATIONS) == 1


async def test_readyz_includes_the_check_only_when_enabled_and_counts_its_calls():
    fake = FakeConversations()
    settings = Settings(
        _env_file=None,
        TWILIO_ACCOUNT_SID=p.ACCOUNT,
        TWILIO_AUTH_TOKEN="t",
        DELIVERY_GATEWAY_STORE_URL="memory://",
        DELIVERY_GATEWAY_READY_CHECKS_UPSTREAM=True,
    )
    app = create_app(settings, upstream=fake)
    await app.state.gateway.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(30)))
            assert {a.status_code for a in answers} == {200}
            assert answers[0].json()["checks"]["upstream"] == "ok"
            assert fake.calls["list_conversations"] == 1

            fake.fail["list_conversations"] = UpstreamUnauthorized("HTTP 401", status=401)
            app.state.gateway.credentials_probe._checked_at -= 61  # a minute later
            refused = await client.get("/readyz")
            assert refused.status_code == 503
            assert refused.json()["checks"]["upstream"].startswith("unavailable: Twilio refused")
            assert fake.calls["list_conversations"] == 2
    finally:
        await app.state.gateway.close()

    plain = create_app(settings.model_copy(update={"ready_checks_upstream": False}), upstream=fake)
    await plain.state.gateway.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://gw") as client:
            assert "upstream" not in (await client.get("/readyz")).json()["checks"]
        assert fake.calls["list_conversations"] == 2
    finally:
        await plain.state.gateway.close()
