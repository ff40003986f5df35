"""The ASGI GraphQL endpoint (HTTP, WebSocket, SSE) over the gateway schema, one fresh RequestContext per request.

Never authenticates HTTP requests itself: it reads the Caller the auth middleware put on the ASGI scope, and
never shares loaders between requests.
"""

from __future__ import annotations

from typing import Any

from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from delivery_gateway.graphql.context import GatewayServices, MissingCaller, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.http.guards import OriginPolicy
from delivery_gateway.kernel.callers import DEMO_CALLER, Caller

__all__ = ["GatewayGraphQL", "MissingCaller", "caller_for", "create_graphql_app"]


def caller_for(scope: dict[str, Any], services: GatewayServices) -> Caller | None:
    """The request's caller: set as `scope["caller"]` by the auth middleware in front of this app.

    Fails closed: without a caller on the scope, only demo mode has one (DEMO_CALLER); otherwise None, and any
    resolver that needs the caller raises MissingCaller. (The middleware lets only the IDE page through without
    a caller, and that page executes nothing.)
    """
    caller = scope.get("caller")
    if isinstance(caller, Caller):
        return caller
    return DEMO_CALLER if services.settings.demo_mode else None


class GatewayGraphQL(GraphQL):
    def __init__(self, services: GatewayServices, **kwargs: Any) -> None:
        super().__init__(build_schema(services.settings), **kwargs)
        self.services = services
        self.origin_policy = OriginPolicy.from_settings(services.settings)

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        """Cross-origin WebSocket handshakes follow the same origin policy as CORS (http.guards.OriginPolicy)."""
        return self.origin_policy.allows(origin, None)

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        return RequestContext(self.services, caller_for(request.scope, self.services), request, response)


def create_graphql_app(services: GatewayServices) -> GatewayGraphQL:
    settings = services.settings
    # graphql-sse (distinct connections mode, `Accept: text/event-stream`) for clients that cannot hold a WebSocket.
    protocols = [GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL]
    if settings.legacy_graphql_ws:
        protocols.append(GRAPHQL_WS_PROTOCOL)
    return GatewayGraphQL(
        services,
        graphql_ide="graphiql" if settings.graphiql else None,
        subscription_protocols=tuple(protocols),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
