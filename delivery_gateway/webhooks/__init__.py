"""Twilio webhook ingest: the `POST /webhooks/twilio` route and the processor behind it.

Never wires itself into an app: the app factory mounts `routes()` and calls `start()` / `stop()`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from delivery_gateway.webhooks.endpoint import TwilioWebhookEndpoint
from delivery_gateway.webhooks.invalidation import CacheInvalidator
from delivery_gateway.webhooks.processor import WebhookProcessor

__all__ = ["WEBHOOK_PATH", "WebhookIngest"]

WEBHOOK_PATH = "/webhooks/twilio"


class WebhookIngest:
    """Endpoint + processor over `services` (GatewayServices: settings, cache, metrics, ledger, pubsub).

    Lifecycle: `await start()` after the ledger and pub/sub started (reprocesses what a crash left behind),
    `await stop()` before closing them.
    """

    def __init__(self, services: Any, *, path: str = WEBHOOK_PATH) -> None:
        if services.ledger is None:
            raise ValueError("WebhookIngest needs services.ledger (create_ledger(settings.store_url))")
        self.services = services
        self.path = path
        invalidator = CacheInvalidator(services.cache, services.ledger, services.settings)
        self.processor = WebhookProcessor(services.ledger, services.pubsub, invalidator, metrics=services.metrics)
        self.endpoint = TwilioWebhookEndpoint(
            auth_token=services.settings.auth_token,
            public_url=services.settings.public_url,
            ledger=services.ledger,
            processor=self.processor,
            metrics=services.metrics,
        )

    def routes(self) -> list[Route]:
        return [Route(self.path, self.endpoint.handle, methods=["POST"], name="twilio_webhook")]

    async def start(self) -> int:
        """Returns how many inbox entries left by a previous run were processed."""
        return await self.processor.start()

    async def drain(self) -> None:
        await self.processor.drain()

    async def stop(self) -> None:
        await self.processor.stop()
