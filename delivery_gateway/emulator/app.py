"""Assembles the emulator: its state (store, knobs, counters, simulator, webhooks) and the Starlette app.

The one place the emulator is wired together; never holds domain logic of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.errors import TwilioError, not_found
from delivery_gateway.emulator.faults import HIDE_DROPPED_CONNECTIONS, FaultInjector
from delivery_gateway.emulator.models import WebhookSettings
from delivery_gateway.emulator.request_counter import RequestCounter
from delivery_gateway.emulator.routes import emulator_routes
from delivery_gateway.emulator.seed import seed_demo_data
from delivery_gateway.emulator.simulator import DeliverySimulator
from delivery_gateway.emulator.store import ConversationStore
from delivery_gateway.emulator.webhooks import WebhookDispatcher


class EmulatorState:
    """Everything one emulator instance holds; tests reach it as `app.state.emulator`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = ConversationStore(config.account_sid, seed=config.seed)
        self.requests = RequestCounter()
        self.faults = FaultInjector(config)
        self.webhooks = WebhookDispatcher(config, self.store.webhook_settings)
        self.simulator = DeliverySimulator(config, self.store, self.webhooks)
        if config.seed_data:
            seed_demo_data(self.store, config.seed)

    @property
    def default_service_sid(self) -> str:
        return self.store.default_service.sid

    def set_webhook(
        self,
        *,
        post_webhook_url: str | None,
        filters: list[str] | None = None,
        service_sid: str | None = None,
        method: str = "POST",
    ) -> WebhookSettings:
        """Configure post-event webhooks in-process: account-level (`service_sid` None), or service-level, which
        once it has a URL overrides the account-level configuration for that service's conversations."""
        settings = self.store.webhook_settings(service_sid)
        settings.post_webhook_url = post_webhook_url
        settings.filters = list(filters if filters is not None else ["onDeliveryUpdated"])
        settings.method = method
        return settings

    def reseed(self, seed: int | None) -> None:
        """Restart every random stream (faults, delivery outcomes, webhook knobs) from `seed`."""
        self.config.seed = seed
        self.faults.reseed(seed)
        self.simulator.reseed(seed)
        self.webhooks.reseed(seed)

    async def aclose(self) -> None:
        """Stop delivery tasks and the webhook worker; safe to call more than once."""
        await self.simulator.close()
        await self.webhooks.close()


async def _twilio_not_found(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return TwilioError(405, 20004, "Method not allowed").response()
    return not_found(request.url.path).response()


def create_emulator_app(config: EmulatorConfig | None = None) -> Starlette:
    """A Starlette app emulating Twilio Conversations v1 for `config`; its state is `app.state.emulator`."""
    logging.getLogger("uvicorn.error").addFilter(HIDE_DROPPED_CONNECTIONS)  # same object: added once
    state = EmulatorState(config or EmulatorConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.aclose()

    app = Starlette(
        routes=emulator_routes(),
        lifespan=lifespan,
        exception_handlers={404: _twilio_not_found, 405: _twilio_not_found},
    )
    app.state.emulator = state
    return app
