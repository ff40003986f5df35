"""Twilio webhook ingest: the `POST /webhooks/twilio` route and the processor behind it.

Never wires itself into an app (the app factory mounts `routes()` and calls `start()` / `close()`), and never
imports the GraphQL layer: webhooks flow one way, into the ledger, the cache and pub/sub.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.routing import Route

from delivery_gateway.cache import ResourceCache
from delivery_gateway.cache.responses import ResponseCache
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import ApplyResult, DeliveryLedger, LedgerEvent
from delivery_gateway.pubsub import PubSub
from delivery_gateway.webhooks.endpoint import TwilioWebhookEndpoint
from delivery_gateway.webhooks.front import CorsHeaders, WebhookFront
from delivery_gateway.webhooks.invalidation import AfterApplyChain, CacheInvalidator, ResponseInvalidator
from delivery_gateway.webhooks.processor import WebhookProcessor

__all__ = ["WEBHOOK_PATH", "WebhookIngest"]

WEBHOOK_PATH = "/webhooks/twilio"


class WebhookIngest:
    """Endpoint + processor over the process's ledger, pub/sub, resource cache (None: none), response cache (None:
    none) and metrics.

    Lifecycle: `await start()` after the ledger and pub/sub started (reprocesses what a crash left behind),
    `await close()` before closing them.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: DeliveryLedger,
        pubsub: PubSub,
        cache: ResourceCache | None,
        metrics: Metrics,
        responses: ResponseCache | None = None,
        path: str = WEBHOOK_PATH,
    ) -> None:
        self.path = path
        self.settings = settings
        self.ledger = ledger
        steps: list[CacheInvalidator | ResponseInvalidator] = []
        if cache is not None:
            steps.append(CacheInvalidator(cache, ledger, settings))
        if responses is not None:  # after the resource cache: a response executed after the drop reads fresh data
            steps.append(ResponseInvalidator(responses))
        invalidator = AfterApplyChain(*steps) if steps else None
        self.processor = WebhookProcessor(ledger, pubsub, invalidator, metrics=metrics)
        self.endpoint = TwilioWebhookEndpoint(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.auth_token,
            public_url=settings.public_url,
            ledger=ledger,
            processor=self.processor,
            metrics=metrics,
        )

    def front_middleware(self, cors_headers: CorsHeaders) -> Middleware:
        """The route's lean path (webhooks/front.py), for the app's middleware list: inside the request log, in
        front of the guards (it applies their rules itself; `cors_headers`: the origin policy's)."""
        return Middleware(
            WebhookFront, endpoint=self.endpoint, settings=self.settings, path=self.path, cors_headers=cors_headers
        )

    def routes(self) -> list[Route]:
        return [Route(self.path, self.endpoint.handle, methods=["POST"], name="twilio_webhook")]

    async def start(self) -> int:
        """Returns how many inbox entries left by a previous run were processed."""
        return await self.processor.start()

    async def apply(self, events: Sequence[LedgerEvent]) -> list[ApplyResult]:
        """Applies events learnt other than by webhook (reconciliation) exactly as webhooks are applied: ledger,
        cache, pub/sub. Their `source` tells the receipt history where they came from."""
        return await self.processor.apply(events)

    async def drain(self) -> None:
        await self.processor.drain()

    async def close(self) -> None:
        await self.processor.close()
