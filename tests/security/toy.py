"""A tiny Strawberry schema and Starlette app wired with the security pieces, the way app.py should wire them.

Test support only; never imports the gateway's real schema, so these tests run before (and apart from) it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import Info

from delivery_gateway.auth import CALLER_SCOPE_KEY, AuthMiddleware
from delivery_gateway.http_guards import OriginPolicy, guard_middleware
from delivery_gateway.kernel.callers import Caller
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.limits import FieldCost, limit_extensions

# Conversation membership of the toy world: conversation SID -> identities.
MEMBERS: dict[str, set[str]] = {}
UPSTREAM_CALLS: list[str] = []  # every "upstream" call a resolver made, for "rejected before any call" tests


class ForbiddenError(Exception):
    extensions = {"code": "FORBIDDEN"}

    def __init__(self) -> None:
        super().__init__("You do not have access to this conversation.")


def _caller(info: Info) -> Caller:
    context = info.context
    caller = context.get("caller") if isinstance(context, dict) else None
    if caller is None:  # WebSocket: the caller arrives with connection_init, after the context was made
        request = context["request"]
        caller = request.scope.get(CALLER_SCOPE_KEY)
    assert isinstance(caller, Caller), "a request reached a resolver without a caller"
    return caller


def _authorize(info: Info, sid: str) -> None:
    UPSTREAM_CALLS.append(f"participants:{sid}")
    caller = _caller(info)
    if not caller.full_access and caller.identity not in MEMBERS.get(sid, set()):
        raise ForbiddenError()


@strawberry.type
class Receipt:
    status: str


@strawberry.type
class Message:
    index: int

    @strawberry.field
    def receipts(self, first: int | None = None) -> list[Receipt]:
        UPSTREAM_CALLS.append("receipts")
        return [Receipt(status="read")]


@strawberry.type
class Conversation:
    sid: str

    @strawberry.field
    def messages(self, first: int | None = None, last: int | None = None) -> list[Message]:
        UPSTREAM_CALLS.append("messages")
        return [Message(index=i) for i in range(min(first or 2, 3))]

    @strawberry.field
    def members(self) -> list[str]:
        return sorted(MEMBERS.get(self.sid, set()))


@strawberry.type
class Query:
    @strawberry.field
    def conversation(self, info: Info, sid: str) -> Conversation:
        UPSTREAM_CALLS.append("conversation")
        _authorize(info, sid)
        return Conversation(sid=sid)

    @strawberry.field
    def whoami(self, info: Info) -> str:
        caller = _caller(info)
        return f"{caller.kind.value}:{caller.identity}"

    @strawberry.field
    def boom(self) -> str:
        raise RuntimeError("secret detail: db password is hunter2")

    @strawberry.field
    def echo(self, text: str, n: int | None = None) -> str:
        return text


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def conversation_events(self, info: Info, sid: str) -> AsyncGenerator[str, None]:
        _authorize(info, sid)
        for i in range(3):
            yield f"{sid}:{i}"
            await asyncio.sleep(0)

    @strawberry.subscription
    async def forever(self) -> AsyncGenerator[int, None]:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0.05)


TOY_COSTS = {
    "Query.conversation": FieldCost(),
    "Conversation.messages": FieldCost(),
    "Message.receipts": FieldCost(fanout=50),
    "Subscription.conversationEvents": FieldCost(calls=2),
}


def build_schema(settings: Settings) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        extensions=limit_extensions(settings, cost_table=TOY_COSTS),
    )


class ToyGraphQL(GraphQL):
    origin_policy: OriginPolicy

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        return self.origin_policy.allows(origin, None)

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> dict[str, Any]:
        return {"request": request, "response": response, "caller": request.scope.get(CALLER_SCOPE_KEY)}


def build_app(settings: Settings) -> Starlette:
    graphql = ToyGraphQL(
        build_schema(settings),
        graphql_ide="graphiql" if settings.graphiql else None,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    graphql.origin_policy = OriginPolicy.from_settings(settings)
    protected = AuthMiddleware.from_settings(graphql, settings)

    async def webhook(request: Request) -> PlainTextResponse:
        body = await request.body()
        return PlainTextResponse(f"got {len(body)}")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    middleware: list[Middleware] = guard_middleware(settings, webhook_paths=["/webhooks"])
    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/webhooks/twilio", webhook, methods=["POST"]),
            Route("/graphql", protected, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", protected),
        ],
        middleware=middleware,
    )
