"""A gateway for the live tests: ledger, pub/sub, cache, webhook ingest and GraphQL, served by uvicorn on an
ephemeral port. A stand-in for app.py's wiring, built from the same factories.

Test helper only: never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from twilio.request_validator import RequestValidator

from delivery_gateway.cache.resource_cache import ResourceCache
from delivery_gateway.callers import Caller, CallerKind
from delivery_gateway.context import GatewayServices, RequestContext
from delivery_gateway.graphql_app import GatewayGraphQL
from delivery_gateway.ledger import create_ledger
from delivery_gateway.metrics import Metrics
from delivery_gateway.pubsub import create_pubsub
from delivery_gateway.schema.errors import GatewaySchema
from delivery_gateway.schema.mutation import Mutation
from delivery_gateway.schema.query import Query
from delivery_gateway.schema.subscription import Subscription
from delivery_gateway.settings import Settings
from delivery_gateway.webhooks import WEBHOOK_PATH, WebhookIngest

TEST_CALLER = Caller(kind=CallerKind.INTERNAL, identity="live-tests")


def live_schema(settings: Settings) -> GatewaySchema:
    """build_schema(settings) once it registers Subscription/Mutation; until then the same roots by hand."""
    from delivery_gateway.schema import build_schema

    schema = build_schema(settings)
    if schema.subscription is not None and schema.mutation is not None:
        return schema
    return GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription)


class LiveGraphQL(GatewayGraphQL):
    def __init__(self, services: GatewayServices) -> None:
        from strawberry.asgi import GraphQL

        GraphQL.__init__(
            self,
            live_schema(services.settings),
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
        )
        self.services = services

    async def get_context(self, request: Any, response: Any) -> RequestContext:
        # No auth middleware in this harness (test_app_wiring.py covers the real app's): a full-access caller.
        return RequestContext.create(self.services, TEST_CALLER, request, response)


@dataclass
class Gateway:
    services: GatewayServices
    ingest: WebhookIngest
    app: Starlette
    base_url: str = ""

    @property
    def ledger(self):
        return self.services.ledger

    @property
    def webhook_url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/graphql"


@contextlib.asynccontextmanager
async def gateway_services(settings: Settings, upstream: Any = None) -> AsyncIterator[GatewayServices]:
    metrics = Metrics()
    cache = ResourceCache.from_url(settings.cache_url, metrics=metrics, namespace=f"dgtest{uuid.uuid4().hex[:8]}")
    ledger = create_ledger(settings.store_url)
    pubsub = create_pubsub(settings.pubsub_url, queue_size=settings.subscriber_queue_size, metrics=metrics)
    await ledger.start()
    await pubsub.start()
    services = GatewayServices(
        settings=settings, upstream=upstream, cache=cache, metrics=metrics, ledger=ledger, pubsub=pubsub
    )
    try:
        yield services
    finally:
        await pubsub.stop()
        await ledger.close()
        await cache.close()


def build_app(services: GatewayServices) -> tuple[Starlette, WebhookIngest]:
    ingest = WebhookIngest(services)
    graphql = LiveGraphQL(services)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await ingest.start()
        try:
            yield
        finally:
            await ingest.stop()

    routes = [*ingest.routes(), Route("/graphql", graphql), WebSocketRoute("/graphql", graphql)]
    return Starlette(routes=routes, lifespan=lifespan), ingest


@contextlib.asynccontextmanager
async def serve_gateway(settings: Settings, upstream: Any = None) -> AsyncIterator[Gateway]:
    async with gateway_services(settings, upstream) as services:
        app, ingest = build_app(services)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("gateway server stopped during startup")
                await asyncio.sleep(0.005)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield Gateway(services, ingest, app, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await task


def sign(auth_token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(auth_token).compute_signature(url, params)}


class TransportWsClient:
    """A minimal graphql-transport-ws client over `websockets` (the protocol Apollo and urql speak)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self._ids = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, payload: dict | None = None) -> AsyncIterator[TransportWsClient]:
        async with websockets.connect(url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ack["type"] == "connection_ack", ack
            yield cls(ws)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        """The next message other than a ping (answered)."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def complete(self, op_id: str) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))
