"""Per-process services and the per-request GraphQL context (caller, fresh DataLoaders).

Never holds loaders beyond one request or one subscription event: a loader kept longer would serve stale data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from delivery_gateway.kernel.callers import Caller
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.resolvers.loaders import Loaders
from delivery_gateway.upstream.api import ConversationsAPI

if TYPE_CHECKING:
    from delivery_gateway.cache import ResourceCache
    from delivery_gateway.kernel.metrics import Metrics


@dataclass
class GatewayServices:
    """Everything a request may use, built once per process (tests build their own)."""

    settings: Settings
    upstream: ConversationsAPI
    cache: ResourceCache | None = None
    metrics: Metrics | None = None
    ledger: Any = None  # delivery ledger, filled by its owner when the app is assembled
    pubsub: Any = None  # live-update broker, filled by its owner when the app is assembled

    def new_loaders(self) -> Loaders:
        return Loaders(self.upstream, self.cache, self.settings)


@dataclass
class RequestContext:
    """What every resolver sees as `info.context`."""

    services: GatewayServices
    caller: Caller
    loaders: Loaders
    request: Any = None
    response: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, services: GatewayServices, caller: Caller, request: Any = None, response: Any = None):
        return cls(
            services=services,
            caller=caller,
            loaders=services.new_loaders(),
            request=request,
            response=response,
        )

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def for_event(self) -> RequestContext:
        """A copy with fresh loaders, for resolving one subscription event.

        A WebSocket's context lives as long as the connection; resolving each event with this copy keeps one
        event's reads consistent and batched without serving the previous event's data.
        """
        return replace(self, loaders=self.services.new_loaders(), extra={})

    def refresh_loaders(self) -> None:
        """Drop every loader in place (same effect as `for_event` when the context object must be kept)."""
        self.loaders = self.services.new_loaders()
