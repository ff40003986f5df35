"""HTTP authentication on the gateway as deployed: 401s with a Bearer challenge, participant scoping, full-access
keys, demo mode, the IDE page.

In-process (httpx ASGI transport) through `create_app`; a refused request never reaches upstream.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.conftest import API_KEY, CONV_ALICE, CONV_MALLORY, World, mint, post

CONVERSATION = "query($s: String!) { conversation(sid: $s) { sid participants { identity } } }"
BAD = [None, "Bearer nope", "Basic dXNlcjpwYXNz", f"Bearer {mint(secret='q' * 40)}"]


def conversation(sid: str) -> dict:
    return {"query": CONVERSATION, "variables": {"s": sid}}


def identities(response: httpx.Response) -> list[str]:
    return sorted(p["identity"] for p in response.json()["data"]["conversation"]["participants"] if p["identity"])


@pytest.mark.parametrize("authorization", BAD)
async def test_no_or_bad_credentials_get_401_with_bearer_challenge(world: World, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await post(world.build(), conversation(CONV_ALICE), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert world.fake.calls.total() == 0


async def test_participant_reads_own_conversation_not_a_strangers(world: World) -> None:
    app = world.build()
    own = await post(app, conversation(CONV_ALICE), mint("alice"))
    other = await post(app, conversation(CONV_MALLORY), mint("alice"))
    assert own.json()["data"]["conversation"]["sid"] == CONV_ALICE and identities(own) == ["alice", "bob"]
    body = other.json()
    assert body["data"] == {"conversation": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "mallory" not in other.text


async def test_internal_key_has_full_access(world: World) -> None:
    response = await post(world.build(), conversation(CONV_MALLORY), API_KEY)
    assert identities(response) == ["mallory"]


async def test_demo_mode_lets_anonymous_callers_in(world: World) -> None:
    response = await post(world.build(DELIVERY_GATEWAY_DEMO_MODE=True), conversation(CONV_MALLORY))
    assert identities(response) == ["mallory"]


async def test_two_authorization_headers_are_refused(world: World) -> None:
    transport = httpx.ASGITransport(app=world.build())
    headers = [("Authorization", f"Bearer {API_KEY}"), ("Authorization", f"Bearer {mint('alice')}")]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 401


async def test_ide_page_without_credentials_only_when_enabled_and_never_executes(world: World) -> None:
    transport = httpx.ASGITransport(app=world.build())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
        query = await c.get("/graphql", params={"query": "{ __typename }"}, headers={"Accept": "text/html"})
        encoded = await c.get("/graphql?%71uery=%7B%20__typename%20%7D", headers={"Accept": "*/*"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert query.status_code == 401 and encoded.status_code == 401
    transport = httpx.ASGITransport(app=world.build(DELIVERY_GATEWAY_GRAPHIQL=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 401


async def test_unprotected_routes_stay_open(world: World) -> None:
    transport = httpx.ASGITransport(app=world.build())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200


async def test_an_expired_access_token_says_token_expired(world: World) -> None:
    response = await post(world.build(), conversation(CONV_ALICE), mint("alice", ttl=-60))
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    forged = await post(world.build(), conversation(CONV_ALICE), mint("alice", secret="q" * 40))
    assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_token_minted_to_live_beyond_twilios_24_hours_is_refused_naming_the_limit(world: World) -> None:
    """Twilio refuses to honour such a token (error 20157, "Expiration Time Exceeds Maximum Time Allowed"): an app
    holding one was minted wrong, and is told how to fix it rather than to refresh it."""
    response = await post(world.build(), conversation(CONV_ALICE), mint("alice", ttl=25 * 3600))
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TOKEN_LIFETIME_EXCEEDED"
    assert "24-hour maximum" in error["message"] and "86400" in error["message"]
    assert world.fake.calls.total() == 0
    within = await post(world.build(), conversation(CONV_ALICE), mint("alice", ttl=24 * 3600))
    assert within.json()["data"]["conversation"]["sid"] == CONV_ALICE
