"""Per-process services and the per-request GraphQL context (caller, fresh DataLoaders).

Never holds loaders beyond one request or one subscription event: a loader kept longer would serve stale data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from delivery_gateway.cache import ResourceCache
from delivery_gateway.cache.rate_limits import RateLimiter
from delivery_gateway.cache.responses import ResponseCache
from delivery_gateway.graphql.dataloaders import Loaders
from delivery_gateway.graphql.paging import PageSizes
from delivery_gateway.kernel.callers import Caller
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.request_stats import note_caller
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import DeliveryLedger, create_ledger
from delivery_gateway.pubsub import PubSub, create_pubsub
from delivery_gateway.upstream.api import ConversationsAPI


@dataclass
class GatewayServices:
    """Everything a request may use, built once per process by the app factory (app.build_services).

    `cache=None` runs without a resource cache (every read reaches upstream). Tests that build their own
    services and need no ledger, broker or rate-limit store of their own get in-process ones.
    """

    settings: Settings
    upstream: ConversationsAPI
    cache: ResourceCache | None = None
    metrics: Metrics = field(default_factory=Metrics)
    ledger: DeliveryLedger = field(default_factory=lambda: create_ledger("memory://"))
    pubsub: PubSub = field(default_factory=lambda: create_pubsub("memory://"))
    limits: RateLimiter = field(default_factory=RateLimiter.in_memory)
    responses: ResponseCache | None = None  # the whole-response cache in front of execution (None: off)

    def new_loaders(self) -> Loaders:
        return Loaders(self)


class MissingCaller(RuntimeError):
    """A resolver ran without an authenticated caller (a wiring error, never a 200)."""


class RequestContext:
    """What every resolver sees as `info.context`: the services, the caller, this request's loaders."""

    def __init__(
        self,
        services: GatewayServices,
        caller: Caller | None,
        request: Request | WebSocket | None = None,
        response: Response | WebSocket | None = None,
    ) -> None:
        self.services = services
        self._caller = caller
        if caller is not None:
            note_caller(caller.kind)
        self.loaders = services.new_loaders()
        self.page_sizes = PageSizes.from_settings(services.settings)
        self.request = request
        self.response = response
        # Set by Strawberry from a WebSocket's `connection_init` payload (on_ws_connect authenticates it).
        self.connection_params: dict[str, Any] | None = None

    @property
    def caller(self) -> Caller:
        if self._caller is None:
            raise MissingCaller("no authenticated caller: the request was not authenticated before resolving")
        return self._caller

    @property
    def authenticated(self) -> bool:
        return self._caller is not None

    def authenticate(self, caller: Caller) -> None:
        self._caller = caller
        note_caller(caller.kind)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def refresh_loaders(self) -> None:
        """Fresh loaders for one subscription event: a WebSocket's context lives as long as the connection, and
        resolving each event with new loaders keeps its reads consistent and batched without serving the previous
        event's data."""
        self.loaders = self.services.new_loaders()
