"""Processes recorded webhook events after Twilio got its 200: ledger apply -> cache update -> publish.

Never loses an event: an inbox entry is removed only after all three steps ran; whatever is left (crash,
error) is processed again on the next start, and applying twice is harmless (the ledger is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Protocol

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.ledger import ApplyResult, DeliveryLedger, LedgerEvent
from delivery_gateway.pubsub import PubSub, conversation_channel
from delivery_gateway.webhooks.parse import MalformedWebhook, parse_event

log = logging.getLogger(__name__)


class AfterApply(Protocol):
    async def after_apply(self, event: LedgerEvent, result: ApplyResult) -> None: ...


class WebhookProcessor:
    """One worker task consuming (inbox id, event) in arrival order."""

    def __init__(
        self,
        ledger: DeliveryLedger,
        pubsub: PubSub,
        invalidator: AfterApply | None = None,
        *,
        metrics: Metrics | None = None,
        retry_delay: float = 0.5,
    ) -> None:
        self.ledger = ledger
        self.metrics = metrics if metrics is not None else Metrics()
        self.pubsub = pubsub
        self.invalidator = invalidator
        self.retry_delay = retry_delay
        self._queue: asyncio.Queue[tuple[int, LedgerEvent]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.processed = 0

    async def start(self) -> int:
        """Reprocess every inbox entry left unprocessed (by a crash or an error), then start the worker."""
        recovered = await self.recover()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="webhook-processor")
        return recovered

    async def recover(self) -> int:
        count = 0
        while True:
            pending = await self.ledger.inbox_pending(limit=1000)
            if not pending:
                return count
            for entry_id, body in pending:
                try:
                    event = parse_event(json.loads(body))
                except (MalformedWebhook, ValueError):
                    log.error("inbox entry %s is unreadable; dropping it", entry_id)
                    await self.ledger.inbox_done(entry_id)
                    continue
                if event is not None:
                    await self.process(entry_id, event, recovering=True)
                else:
                    await self.ledger.inbox_done(entry_id)
                count += 1

    def submit(self, entry_id: int, event: LedgerEvent) -> None:
        self._queue.put_nowait((entry_id, event))

    async def drain(self) -> None:
        """Wait until everything submitted so far was processed (tests, graceful shutdown)."""
        await self._queue.join()

    async def close(self, *, drain_timeout: float = 5.0) -> None:
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), drain_timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    async def process(self, entry_id: int, event: LedgerEvent, *, recovering: bool = False) -> ApplyResult:
        result = await self.ledger.apply(event)
        self._count(event, result)
        if self.invalidator is not None:
            try:
                await self.invalidator.after_apply(event, result)
            except Exception:
                log.warning("cache update after %s failed", type(event).__name__, exc_info=True)
        # A duplicate's change was published when first applied; after a crash it may not have been.
        if result.change is not None and (recovering or not result.duplicate):
            try:
                await self.pubsub.publish(conversation_channel(result.change.conversation_sid), result.change.to_json())
            except Exception:  # subscribers still get it from the ledger when they resume with their cursor
                log.warning("publishing change %s failed", result.change.seq, exc_info=True)
        await self.ledger.inbox_done(entry_id)
        self.processed += 1
        return result

    def _count(self, event: LedgerEvent, result: ApplyResult) -> None:
        outcome = "duplicate" if result.duplicate else ("applied" if result.change is not None else "stale")
        self.metrics.webhooks_received.labels(type(event).__name__, outcome).inc()

    async def _work(self) -> None:
        while True:
            entry_id, event = await self._queue.get()
            try:
                await self.process(entry_id, event)
            except asyncio.CancelledError:
                raise
            except Exception:  # stays in the inbox; retried shortly, and again on the next start
                log.exception("processing webhook inbox entry %s failed; retrying", entry_id)
                await asyncio.sleep(self.retry_delay)
                self._queue.put_nowait((entry_id, event))
            finally:
                self._queue.task_done()
