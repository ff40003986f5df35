"""Posts Conversations post-event webhooks (onMessageAdded, onDeliveryUpdated, ...), signed like Twilio.

Never raises into callers, never lets a failing receiver stop the queue: failures are logged and retried.
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


@dataclass
class WebhookEvent:
    """One event bound for one URL. `params` excludes RetryCount, which is set per attempt."""

    url: str
    method: str
    params: dict[str, str]
    idempotency_token: str = field(default_factory=lambda: uuid.uuid4().hex)


def signed_request(auth_token: str, event: WebhookEvent, retry_count: int) -> tuple[str, dict, dict]:
    """(url, form, headers) of one attempt; X-Twilio-Signature covers exactly that URL and those params."""
    params = {**event.params, "RetryCount": str(retry_count)}
    validator = RequestValidator(auth_token)
    headers = {
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
        self.delivered = 0  # attempts answered with a non-5xx status
        self.abandoned = 0  # events given up on after every retry
        self.reseed(config.seed)
        self._queue: asyncio.Queue[WebhookEvent] | None = None
        self._workers: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/webhooks") if seed is not None else random.Random()

    def emit(self, service_sid: str | None, event_type: str, params: dict[str, str]) -> bool:
        """Queue `event_type` if the scope's webhook settings have a post URL and a filter for it."""
        settings = self.settings_for(service_sid)
        if not settings.post_webhook_url or event_type not in settings.filters:
            return False
        event = WebhookEvent(settings.post_webhook_url, settings.method, {"EventType": event_type, **params})
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
        for attempt in range(self.config.webhook_retries + 1):
            url, params, headers = signed_request(self.config.auth_token, event, attempt)
            try:
                timeout = aiohttp.ClientTimeout(total=self.config.webhook_timeout)
                async with self._session.request(
                    event.method.upper(), url, data=params or None, headers=headers, timeout=timeout
                ) as response:
                    await response.read()
                    if response.status < 500:
                        self.delivered += 1
                        return
                    log.warning("webhook %s -> %s answered %s", event.params["EventType"], url, response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                log.warning("webhook %s -> %s failed: %r", event.params["EventType"], url, error)
            if attempt < self.config.webhook_retries:
                await asyncio.sleep(self.config.webhook_retry_delay * 2**attempt)
        self.abandoned += 1
        log.error("webhook %s -> %s abandoned", event.params["EventType"], event.url)
