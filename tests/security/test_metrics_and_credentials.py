"""`/metrics` behind a bearer key when DELIVERY_GATEWAY_METRICS_KEY is set, and one meaning per Twilio setting:
TWILIO_API_KEY/TWILIO_API_SECRET are REST credentials (which the emulator accepts as Twilio does), never Access
Token signing keys.

Through `create_app`: in-process for /metrics, on a real socket against the emulator for the REST credentials.
"""

from __future__ import annotations

import httpx
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from tests.app_support import gateway_on_emulator
from tests.security.conftest import World

METRICS_KEY = "scrape-me-0123456789"


async def test_metrics_need_the_key_when_one_is_set(world: World) -> None:
    transport = httpx.ASGITransport(app=world.build(DELIVERY_GATEWAY_METRICS_KEY=METRICS_KEY))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-key"})
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_KEY}"})
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
        health = await client.get("/healthz")
    for refused in (anonymous, wrong, basic):
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "delivery_gateway_" not in refused.text
    assert scraped.status_code == 200 and "delivery_gateway_upstream_requests_total" in scraped.text
    assert health.status_code == 200  # liveness stays open for orchestrators


async def test_metrics_are_open_without_a_key(world: World) -> None:
    transport = httpx.ASGITransport(app=world.build())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        assert (await client.get("/metrics")).status_code == 200


API_KEY_SID, API_KEY_SECRET = "SK" + "5a" * 16, "rest-api-key-secret-of-32-bytes-or-more"
QUERY = "query($c: String!) { conversation(sid: $c) { sid friendlyName } }"


async def ask(base_url: str, bearer: str, conversation: str) -> dict:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            "/graphql",
            json={"query": QUERY, "variables": {"c": conversation}},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    return {"status": response.status_code, **response.json()}


async def test_api_key_credentials_reach_twilio_and_sign_no_access_token() -> None:
    for secret, outcome in ((API_KEY_SECRET, None), ("a-wrong-secret", "UPSTREAM_UNAUTHORIZED")):
        async with gateway_on_emulator(
            emulator={"seed_data": False, "simulate": False, "api_keys": {API_KEY_SID: API_KEY_SECRET}},
            TWILIO_API_KEY=API_KEY_SID,
            TWILIO_API_SECRET=secret,
            DELIVERY_GATEWAY_API_KEYS="ops-key",
        ) as gw:
            store = gw.emulator.state.store
            conversation = store.create_conversation(friendly_name="via an API key")
            store.create_participant(conversation.sid, identity="alice")
            body = await ask(gw.base_url, "ops-key", conversation.sid)
            if outcome is None:  # REST calls authenticate with the API key (the emulator accepts it, as Twilio)
                assert body["data"]["conversation"]["friendlyName"] == "via an API key"
            else:  # ...and only with it: a wrong API secret is refused, though the auth token is right
                assert body["errors"][0]["extensions"]["code"] == outcome
            account = gw.settings.twilio_account_sid
            assert account
            token = AccessToken(account, API_KEY_SID, API_KEY_SECRET, identity="alice", ttl=600)
            token.add_grant(ChatGrant(service_sid=store.default_service.sid))
            refused = await ask(gw.base_url, token.to_jwt(), conversation.sid)
            assert refused["status"] == 401  # the REST key signs no Access Token the gateway accepts
