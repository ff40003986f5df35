"""The ASGI GraphQL endpoint (HTTP + WebSocket) over the gateway schema, one fresh RequestContext per request.

Never authenticates: it reads the Caller an auth middleware put on the ASGI scope, and never shares loaders.
"""

from __future__ import annotations

from typing import Any

from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from delivery_gateway.callers import DEMO_CALLER, Caller, CallerKind
from delivery_gateway.context import GatewayServices, RequestContext
from delivery_gateway.schema import build_schema

SERVICE_CALLER = Caller(kind=CallerKind.INTERNAL, identity="unauthenticated-mount")


def caller_for(scope: dict[str, Any], services: GatewayServices) -> Caller:
    """The request's caller: set as `scope["caller"]` by the auth middleware in front of this app.

    Without a middleware (the app mounted bare, as in tests and the demo), demo mode yields DEMO_CALLER and
    anything else an INTERNAL caller: the middleware is what turns a missing or bad credential into a 401.
    """
    caller = scope.get("caller")
    if isinstance(caller, Caller):
        return caller
    return DEMO_CALLER if services.settings.demo_mode else SERVICE_CALLER


class GatewayGraphQL(GraphQL):
    def __init__(self, services: GatewayServices, **kwargs: Any) -> None:
        super().__init__(build_schema(services.settings), **kwargs)
        self.services = services

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return RequestContext.create(
            self.services, caller_for(request.scope, self.services), request, response
        )


def create_graphql_app(services: GatewayServices) -> GatewayGraphQL:
    settings = services.settings
    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL]
    if settings.legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    return GatewayGraphQL(
        services,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=tuple(protocols),
    )
