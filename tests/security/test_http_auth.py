"""HTTP authentication on the toy app: 401s, participant scoping, full-access keys, the IDE page.

In-process (httpx ASGI transport); the real gateway's end-to-end run is test_gateway_e2e.py.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security import toy
from tests.security.conftest import API_KEY, CONV_ALICE, CONV_BOB, make_settings, mint


def client(**overrides) -> httpx.AsyncClient:
    app = toy.build_app(make_settings(**overrides))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


def conversation_query(sid: str) -> dict:
    return {"query": f'{{ conversation(sid: "{sid}") {{ sid members }} }}'}


BAD = [None, "Bearer nope", "Basic dXNlcjpwYXNz", f"Bearer {mint(secret='q' * 40)}"]


@pytest.mark.parametrize("authorization", BAD)
async def test_no_or_bad_credentials_get_401_with_bearer_challenge(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with client() as c:
        response = await c.post("/graphql", json={"query": "{ whoami }"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert toy.UPSTREAM_CALLS == []


async def test_participant_reads_own_conversation_not_a_strangers() -> None:
    headers = {"Authorization": f"Bearer {mint('alice')}"}
    async with client() as c:
        own = await c.post("/graphql", json=conversation_query(CONV_ALICE), headers=headers)
        other = await c.post("/graphql", json=conversation_query(CONV_BOB), headers=headers)
    assert own.json() == {"data": {"conversation": {"sid": CONV_ALICE, "members": ["alice"]}}}
    body = other.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "bob" not in other.text


async def test_internal_key_has_full_access() -> None:
    async with client() as c:
        response = await c.post(
            "/graphql", json=conversation_query(CONV_BOB), headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert response.json()["data"]["conversation"]["members"] == ["bob"]


async def test_demo_mode_lets_anonymous_callers_in() -> None:
    async with client(DELIVERY_GATEWAY_DEMO_MODE=True) as c:
        response = await c.post("/graphql", json={"query": "{ whoami }"})
    assert response.json() == {"data": {"whoami": "demo:demo"}}


async def test_two_authorization_headers_are_refused() -> None:
    headers = [("Authorization", f"Bearer {API_KEY}"), ("Authorization", f"Bearer {mint('alice')}")]
    async with client() as c:
        response = await c.post("/graphql", json={"query": "{ whoami }"}, headers=headers)
    assert response.status_code == 401


async def test_ide_page_without_credentials_only_when_enabled_and_never_executes() -> None:
    async with client() as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
        query = await c.get("/graphql", params={"query": "{ whoami }"}, headers={"Accept": "text/html"})
        encoded = await c.get("/graphql?%71uery=%7B%20whoami%20%7D", headers={"Accept": "*/*"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert query.status_code == 401 and encoded.status_code == 401
    async with client(DELIVERY_GATEWAY_GRAPHIQL=False) as c:
        page = await c.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 401


async def test_unprotected_routes_stay_open() -> None:
    async with client() as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
