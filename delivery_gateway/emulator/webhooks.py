"""Posts Conversations post-event webhooks (onMessageAdded, onDeliveryUpdated, ...), signed like Twilio.

Never raises into callers, never lets a failing receiver stop the queue: failures are logged (and retried only
as far as `webhook_retries` allows, 0 by default like Twilio's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.models import WebhookSettings

log = logging.getLogger(__name__)


# Twilio's post_webhook_retry_count retries a call that "times out (after 5 seconds) or it receives a 429, 503,
# or 504 HTTP response" (Chat Service resource); any other answer ends the event.
RETRY_STATUSES = frozenset({429, 503, 504})


@dataclass
class WebhookEvent:
    """One event bound for one URL, posted with the same form (and idempotency token) on every attempt."""

    url: str
    method: str
    params: dict[str, str]
    idempotency_token: str = field(default_factory=lambda: uuid.uuid4().hex)


def signed_request(auth_token: str, event: WebhookEvent) -> tuple[str, dict, dict]:
    """(url, form, headers) of one attempt; X-Twilio-Signature covers exactly that URL and those params."""
    params = dict(event.params)
    validator = RequestValidator(auth_token)
    headers = {
        # Sent by Twilio on its webhooks, the same on a retry: receivers deduplicate with it.
        "I-Twilio-Idempotency-Token": event.idempotency_token,
        "User-Agent": "TwilioProxy/1.1",
    }
    if event.method.upper() == "GET":
        separator = "&" if "?" in event.url else "?"
        url = f"{event.url}{separator}{urlencode(params)}"
        headers["X-Twilio-Signature"] = validator.compute_signature(url, {})
        return url, {}, headers
    headers["X-Twilio-Signature"] = validator.compute_signature(event.url, params)
    return event.url, params, headers


class WebhookDispatcher:
    """A queue of webhook events and `webhook_concurrency` workers posting them.

    One worker posts in order (modulo the reorder knob); more post concurrently, as Twilio does, so one slow
    or failing receiver call does not hold every later event back.
    """

    def __init__(self, config: EmulatorConfig, settings_for: Callable[[str | None], WebhookSettings]) -> None:
        self.config = config
        self.settings_for = settings_for
        self.delivered = 0  # events answered with a status that ends them (anything but 429/503/504)
        self.abandoned = 0  # events given up on: no answer, or 429/503/504 after every retry
        self.dropped = 0  # events the drop knob threw away before sending (as if Twilio had lost them)
        self.reseed(config.seed)
        self._queue: asyncio.Queue[WebhookEvent] | None = None
        self._workers: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/webhooks") if seed is not None else random.Random()

    def target(self, service_sid: str | None) -> WebhookSettings:
        """The configuration that fires for a conversation of `service_sid`. Twilio: "If configured,
        service-scoped webhooks will override your global webhook settings such that only the service-scoped
        hooks will fire. This applies only to the services where service-level hooks are configured."
        (Per-Service Webhook resource, https://www.twilio.com/docs/conversations/api/per-service-webhook-resource)"""
        account = self.settings_for(None)
        if service_sid is None:
            return account
        service = self.settings_for(service_sid)
        configured = service.post_webhook_url or (self.config.service_pre_webhook_overrides and service.pre_webhook_url)
        return service if configured else account

    def emit(self, service_sid: str | None, event_type: str, params: dict[str, str]) -> bool:
        """Queue `event_type` if the conversation's webhook target has a post URL and a filter for it."""
        settings = self.target(service_sid)
        if not settings.post_webhook_url or event_type not in settings.filters:
            return False
        if self._draw(self.config.webhook_drop_rate):
            self.dropped += 1
            log.info("webhook %s dropped by the drop knob", event_type)
            return False
        form = {"EventType": event_type, **params, **self.config.webhook_extra_params}
        event = WebhookEvent(settings.post_webhook_url, settings.method, form)
        copies = 2 if self._draw(self.config.webhook_duplicate_rate) else 1
        try:
            queue = self._running_queue()
        except RuntimeError:
            log.warning("webhook %s dropped: no running event loop", event_type)
            return False
        for _ in range(copies):
            queue.put_nowait(dataclasses.replace(event))  # a duplicate keeps the idempotency token
        return True

    async def drain(self) -> None:
        """Wait until every queued event has been posted (or abandoned)."""
        if self._queue is not None:
            await self._queue.join()

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._queue = None

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _running_queue(self) -> asyncio.Queue[WebhookEvent]:
        asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._workers = [worker for worker in self._workers if not worker.done()]
        while len(self._workers) < max(1, self.config.webhook_concurrency):
            self._workers.append(asyncio.create_task(self._work(self._queue), name="emulator-webhooks"))
        return self._queue

    async def _work(self, queue: asyncio.Queue[WebhookEvent]) -> None:
        while True:
            batch = [await queue.get()]
            if not queue.empty() and self._draw(self.config.webhook_reorder_rate):
                batch.insert(0, queue.get_nowait())  # the next event overtakes this one: a reordering
            for event in batch:
                try:
                    await self._post(event)
                except Exception:  # the worker must survive anything a receiver does
                    log.exception("webhook worker: unexpected error")
                finally:
                    queue.task_done()

    async def _post(self, event: WebhookEvent) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url, params, headers = signed_request(self.config.auth_token, event)
        for attempt in range(self.config.webhook_retries + 1):
            try:
                timeout = aiohttp.ClientTimeout(total=self.config.webhook_timeout)
                async with self._session.request(
                    event.method.upper(), url, data=params or None, headers=headers, timeout=timeout
                ) as response:
                    await response.read()
                    if response.status not in RETRY_STATUSES:
                        if response.status >= 400:
                            log.warning("webhook %s -> %s answered %s", event.params["EventType"], url, response.status)
                        self.delivered += 1
                        return
                    log.warning("webhook %s -> %s answered %s", event.params["EventType"], url, response.status)
            except TimeoutError as error:
                log.warning("webhook %s -> %s timed out: %r", event.params["EventType"], url, error)
            except aiohttp.ClientError as error:  # refused, reset: not a case Twilio documents retrying
                log.warning("webhook %s -> %s failed: %r", event.params["EventType"], url, error)
                break
            if attempt < self.config.webhook_retries:
                await asyncio.sleep(self.config.webhook_retry_delay * 2**attempt)
        self.abandoned += 1
        log.error("webhook %s -> %s abandoned", event.params["EventType"], event.url)
