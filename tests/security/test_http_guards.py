"""ASGI guards: body size limits (413/408), webhook limits, correlation ids, CORS.

The gateway as deployed (`create_app`) in-process, the middleware alone for ASGI protocol details, and one
real-socket check that a 413 reaches an actual client.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from delivery_gateway.http.exchange import current_correlation_id
from delivery_gateway.http.guards import BodySizeLimitMiddleware, CorrelationIdMiddleware
from tests.security.conftest import API_KEY, World


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


async def test_oversized_graphql_body_is_413_before_auth_or_parsing(world: World) -> None:
    app = world.build(DELIVERY_GATEWAY_MAX_BODY_BYTES=2048)
    async with client(app) as c:
        big = await c.post("/graphql", json={"query": "{ __typename }", "pad": "x" * 4000})
        auth = {"Authorization": f"Bearer {API_KEY}"}
        ok = await c.post("/graphql", json={"query": "{ __typename }"}, headers=auth)
    assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert ok.status_code == 200


async def test_webhook_route_has_its_own_smaller_limit(world: World) -> None:
    app = world.build(DELIVERY_GATEWAY_MAX_WEBHOOK_BYTES=1024, DELIVERY_GATEWAY_MAX_BODY_BYTES=8192)
    async with client(app) as c:
        assert (await c.post("/webhooks/twilio", content=b"a" * 1024)).status_code == 403  # read; not signed
        assert (await c.post("/webhooks/twilio", content=b"a" * 1025)).status_code == 413
        assert (await c.post("/graphql", content=b"a" * 4000)).status_code != 413


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body()), "cid": current_correlation_id()})


def _guarded(max_bytes: int = 100, timeout: float = 5.0) -> BodySizeLimitMiddleware:
    app = Starlette(routes=[Route("/", _echo, methods=["POST"])])
    return BodySizeLimitMiddleware(app, max_bytes=max_bytes, read_timeout=timeout)


async def test_streamed_body_without_content_length_is_counted() -> None:
    async def chunks(n: int):
        for _ in range(n):
            yield b"x" * 30

    async with client(_guarded()) as c:
        assert (await c.post("/", content=chunks(3))).json()["size"] == 90
        assert (await c.post("/", content=chunks(4))).status_code == 413


async def test_lying_or_bad_content_length() -> None:
    guarded = _guarded()
    sent: list[dict] = []

    async def run(headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        sent.clear()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
        await guarded(scope, receive, send)
        return sent[0]["status"]

    assert await run([(b"content-length", b"5")], b"x" * 500) == 413  # declared small, sent big
    assert await run([(b"content-length", b"abc")], b"") == 400
    assert await run([(b"content-length", b"1000")], b"") == 413


async def test_trickling_body_gets_408() -> None:
    guarded = _guarded(timeout=0.2)
    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(10)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    await asyncio.wait_for(guarded(scope, receive, send), 2)
    assert sent[0]["status"] == 408


@pytest.mark.parametrize(
    ("offered", "kept"),
    [("abc-123", True), ("x" * 65, False), ("bad id\r\n", False), ("<script>", False), ("", False)],
)
async def test_correlation_id(offered: str, kept: bool) -> None:
    app = CorrelationIdMiddleware(Starlette(routes=[Route("/", _echo, methods=["POST"])]))
    async with client(app) as c:
        response = await c.post("/", headers={"X-Request-ID": offered} if offered else {})
    returned = response.headers["x-request-id"]
    assert response.json()["cid"] == returned
    assert (returned == offered) is kept
    assert current_correlation_id() is None


async def test_cors_same_origin_only_by_default_configured_origins_allowed(world: World) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with client(world.build()) as c:
        denied = await c.options("/graphql", headers=preflight)
    assert "access-control-allow-origin" not in denied.headers
    app = world.build(DELIVERY_GATEWAY_ALLOWED_ORIGINS="https://app.example")
    async with client(app) as c:
        allowed = await c.options("/graphql", headers=preflight)
        unauthorized = await c.post("/graphql", json={}, headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    # a 401 is readable by the allowed page, so it can tell "log in again" from "network error"
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "https://app.example"


async def test_demo_mode_allows_localhost_pages(world: World) -> None:
    preflight = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    async with client(world.build(DELIVERY_GATEWAY_DEMO_MODE=True)) as c:
        response = await c.options("/graphql", headers=preflight)
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_413_over_a_real_socket(world: World, serve) -> None:
    host = await serve(world.build(DELIVERY_GATEWAY_MAX_BODY_BYTES=2048))
    async with httpx.AsyncClient(base_url=f"http://{host}") as c:
        response = await c.post("/graphql", content=b"{" + b" " * 100_000 + b"}")
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"null", b"1", b'"x"', b"true"])
async def test_graphql_body_must_be_a_json_object(world: World, body: bytes) -> None:
    async with client(world.build()) as c:
        response = await c.post(
            "/graphql",
            content=body,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
