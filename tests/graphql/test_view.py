"""The ASGI GraphQL app: fresh context per request, caller from the ASGI scope, GraphiQL and WS switches.

Never opens a socket: requests go through httpx's ASGI transport.
"""

from __future__ import annotations

import httpx
import pytest
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.view import MissingCaller, caller_for, create_graphql_app
from delivery_gateway.kernel.callers import DEMO_CALLER, Caller, CallerKind
from delivery_gateway.kernel.settings import Settings
from tests.graphql.gql_support import build_chat


def services(fake, **env) -> GatewayServices:
    return GatewayServices(settings=Settings(_env_file=None, **env), upstream=fake)


async def post(app, query, variables=None, caller: Caller | None = None):
    async def with_caller(scope, receive, send):
        if caller is not None:
            scope["caller"] = caller
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_caller)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/", json={"query": query, "variables": variables or {}})


async def test_each_request_gets_fresh_loaders(fake):
    conv, *_ = build_chat(fake, messages=3)
    app = create_graphql_app(services(fake))
    query = "query($s: String!) { conversation(sid: $s) { sid participants { sid } } }"
    for _ in range(2):
        response = await post(app, query, {"s": conv.record.sid}, Caller(CallerKind.INTERNAL, identity="svc"))
        assert response.status_code == 200 and response.json()["data"]["conversation"]["sid"] == conv.record.sid
    assert fake.calls["fetch_conversation"] == 2 and fake.calls["list_participants"] == 2


async def test_caller_comes_from_scope(fake):
    conv, *_ = build_chat(fake, messages=1)
    app = create_graphql_app(services(fake))
    query = "query($s: String!) { conversation(sid: $s) { sid } }"
    denied = await post(app, query, {"s": conv.record.sid}, Caller(CallerKind.PARTICIPANT, identity="mallory"))
    assert denied.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = await post(app, query, {"s": conv.record.sid}, Caller(CallerKind.PARTICIPANT, identity="alice"))
    assert allowed.json()["data"]["conversation"]["sid"] == conv.record.sid


async def test_fallback_callers_fail_closed_outside_demo_mode(fake):
    assert caller_for({}, services(fake, DELIVERY_GATEWAY_DEMO_MODE=True)) is DEMO_CALLER
    assert caller_for({}, services(fake)) is None
    internal = Caller(CallerKind.INTERNAL, identity="svc")
    assert caller_for({"caller": internal}, services(fake)) is internal
    conv, *_ = build_chat(fake, messages=1)
    response = await post(
        create_graphql_app(services(fake)),
        "query($s: String!) { conversation(sid: $s) { sid } }",
        {"s": conv.record.sid},
    )
    # Without the auth middleware in front, the view itself refuses: 401, nothing runs.
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert fake.calls.total() == 0


def test_switches(fake):
    default = create_graphql_app(services(fake))
    assert default.graphql_ide == "graphiql"
    assert list(default.protocols) == [GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL]
    custom = create_graphql_app(
        services(fake, DELIVERY_GATEWAY_GRAPHIQL=False, DELIVERY_GATEWAY_LEGACY_GRAPHQL_WS=True)
    )
    assert custom.graphql_ide is None
    assert list(custom.protocols) == [GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL, GRAPHQL_WS_PROTOCOL]


def test_an_event_context_has_its_own_loaders_and_the_same_caller(fake):
    context = RequestContext(services(fake), DEMO_CALLER)
    assert not context.holds_loaders  # made on first use: a context that reads nothing holds none
    loaders = context.loaders
    loaders.recipient_states[(None, "IM1")] = []
    event = context.for_event()
    assert event.loaders is not loaders and event.caller is DEMO_CALLER and event.services is context.services
    assert event.loaders.recipient_states == {}  # per-request memos go with the loaders
    assert context.loaders is loaders  # the event's state never replaces the connection's


def test_a_context_without_a_caller_fails_closed(fake):
    context = RequestContext(services(fake), None)
    assert not context.authenticated
    with pytest.raises(MissingCaller):
        _ = context.caller
