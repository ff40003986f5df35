"""Per-process services and the per-request GraphQL context (caller, fresh DataLoaders).

Never holds loaders or memos beyond one request, one operation of a WebSocket, or one subscription event: a loader
kept longer would serve stale data, and a connection that kept them would grow with every event it delivers.
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
from delivery_gateway.graphql.live.fanout import EventFanout
from delivery_gateway.graphql.live.hub import LiveHubs
from delivery_gateway.graphql.live.roles import LiveRole
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
    fanout: EventFanout = field(init=False)  # subscription events shared by subscribers of one group
    hubs: LiveHubs = field(init=False)  # one stream and execution per event for a group's WebSocket subscribers

    def __post_init__(self) -> None:
        events = self.metrics.subscription_events
        self.fanout = EventFanout(
            on_execute=events.labels(outcome="executed").inc, on_share=events.labels(outcome="shared").inc
        )
        self.hubs = LiveHubs(self.metrics, self.fanout)

    def new_loaders(self) -> Loaders:
        return Loaders(self)


class MissingCaller(RuntimeError):
    """A resolver ran without an authenticated caller (a wiring error, never a 200)."""


class RequestContext:
    """What every resolver sees as `info.context`: the services, the caller, this request's loaders.

    An HTTP request (and an SSE stream) has one; a WebSocket has one for the connection (its caller), from which
    each query or mutation on it and each subscription event gets its own (`for_event`), so request-scoped state
    (loaders and the memos that go with them) never outlives what it was read for.
    """

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
        self._loaders: Loaders | None = None  # made on first use: a context that reads nothing holds none
        self.page_sizes = PageSizes.from_settings(services.settings)
        self.request = request
        self.response = response
        # Set by Strawberry from a WebSocket's `connection_init` payload (on_ws_connect authenticates it).
        self.connection_params: dict[str, Any] | None = None
        self.live: LiveRole | None = None  # what a live hub runs this subscription for (graphql/live/roles.py)

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

    @property
    def loaders(self) -> Loaders:
        """This request's (or operation's, or event's) loaders and memos, made on first use."""
        if self._loaders is None:
            self._loaders = self.services.new_loaders()
        return self._loaders

    @property
    def is_connection(self) -> bool:
        """A WebSocket's context: it lives as long as the connection and serves any number of operations."""
        return isinstance(self.request, WebSocket)

    @property
    def holds_loaders(self) -> bool:
        """Whether request-scoped state was made (a long-lived context must not hold any)."""
        return self._loaders is not None

    def for_event(self) -> RequestContext:
        """The context of one subscription event (or one operation of a WebSocket): this context's caller,
        services, request and connection parameters, with request-scoped state of its own.

        The event is resolved with it and it is dropped once the event is sent, so nothing read for one event is
        served to the next, and a connection's memory does not grow with the events it delivers.
        """
        event = RequestContext(self.services, self._caller, self.request, self.response)
        event.connection_params = self.connection_params
        return event

    def for_group(self) -> RequestContext:
        """The context a live hub runs its group's subscription with (graphql/live/hub.py): this caller (whose
        scope the group shares) and the services, without this request or socket, which the hub outlives."""
        return RequestContext(self.services, self._caller)
