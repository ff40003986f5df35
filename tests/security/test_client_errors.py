"""Client mistakes on the GraphQL endpoint of the gateway as deployed: every one is answered GraphQL-shaped with an
`extensions.code` and a 4xx, never plain text, never a 500, never a traceback in the log.

In-process through `create_app` (httpx's ASGI transport) over the fake upstream.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.security.conftest import API_KEY, CONV_ALICE, World

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SUBSCRIPTION = f'subscription {{ deliveryUpdates(conversationSid: "{CONV_ALICE}") {{ cursor }} }}'
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


def coded(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["data"] is None and body["errors"][0]["message"]
    return str(body["errors"][0]["extensions"]["code"])


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        (
            {"method": "POST", "content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "BAD_REQUEST",
        ),
        ({"method": "POST", "json": {}}, 400, "BAD_REQUEST"),  # no query
        ({"method": "POST", "json": {"query": None}}, 400, "BAD_REQUEST"),
        ({"method": "POST", "content": b"query=x", "headers": {"content-type": "text/plain"}}, 400, "BAD_REQUEST"),
        ({"method": "GET", "params": {"variables": "{}"}}, 400, "BAD_REQUEST"),  # a GET without a query
        ({"method": "PUT", "json": {"query": "{ __typename }"}}, 405, "METHOD_NOT_ALLOWED"),
        ({"method": "DELETE"}, 405, "METHOD_NOT_ALLOWED"),
    ],
)
async def test_malformed_requests_are_graphql_shaped(
    world: World, request_kwargs: dict, status: int, code: str
) -> None:
    headers = {**AUTH, **request_kwargs.pop("headers", {})}
    async with client(world.build()) as c:
        response = await c.request(url="/graphql", headers=headers, **request_kwargs)
    assert response.status_code == status and coded(response) == code


async def test_a_mutation_over_get_is_405_pointing_at_post(world: World) -> None:
    mutation = f'mutation {{ resendMessage(conversationSid: "{CONV_ALICE}", messageSid: "IM{"0" * 32}") {{ sid }} }}'
    async with client(world.build()) as c:
        response = await c.get("/graphql", params={"query": mutation}, headers=AUTH)
    assert response.status_code == 405 and coded(response) == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "POST" and "POST" in response.json()["errors"][0]["message"]
    assert world.fake.calls.total() == 0


@pytest.mark.parametrize("accept", [None, "multipart/mixed;subscriptionSpec=1.0, application/json"])
async def test_a_subscription_over_plain_http_is_a_client_error(
    world: World, caplog: pytest.LogCaptureFixture, accept: str | None
) -> None:
    headers = {**AUTH, **({"Accept": accept} if accept else {})}
    with caplog.at_level(logging.INFO):
        async with client(world.build()) as c:
            response = await c.post("/graphql", json={"query": SUBSCRIPTION}, headers=headers)
    assert response.status_code == 400 and coded(response) == "BAD_REQUEST"
    message = response.json()["errors"][0]["message"]
    assert "WebSocket" in message and "text/event-stream" in message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text
    assert world.fake.calls.total() == 0


@pytest.mark.parametrize(
    ("headers", "graphiql", "status"),
    [
        ({"Accept": BROWSER}, True, 200),  # a browser, the IDE on: the page, which executes nothing
        ({"Accept": "*/*"}, True, 200),  # curl
        ({"Accept": BROWSER}, False, 401),
        ({"Accept": "application/json"}, True, 401),
        ({"Accept": ""}, True, 401),  # no Accept at all (httpx sends */* by default)
    ],
)
async def test_get_without_credentials_is_the_ide_page_or_401(
    world: World, headers: dict, graphiql: bool, status: int
) -> None:
    async with client(world.build(DELIVERY_GATEWAY_GRAPHIQL=graphiql, DELIVERY_GATEWAY_INTROSPECTION=False)) as c:
        response = await c.get("/graphql", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert "<html" in response.text.lower()
    else:
        assert coded(response) == "UNAUTHENTICATED" and response.headers["www-authenticate"].startswith("Bearer")


async def test_the_auth_decision_and_the_view_agree_on_what_the_ide_page_is(world: World) -> None:
    """Two Accept headers, the second asking for HTML: both decide on the first, so nothing runs without a caller."""
    transport = httpx.ASGITransport(app=world.build())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        response = await c.get("/graphql", headers=[("Accept", "application/json"), ("Accept", "text/html")])
    assert response.status_code == 401 and coded(response) == "UNAUTHENTICATED"
