"""Processes recorded webhook events after Twilio got its 200: ledger apply -> cache update -> publish, in batches.

Never loses an event: an inbox entry is removed only after all three steps ran; whatever is left (crash,
error) is processed again on the next start, and applying twice is harmless (the ledger is idempotent). Never
publishes out of sequence order: cache updates and publishing run in the ledger's after-commit hook, which no
other batch (in this process or another replica) can overtake; changes a crashed process committed but never
published are handed over, in order, before anything newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Protocol

from delivery_gateway.kernel.metrics import Children, Metrics
from delivery_gateway.ledger import AfterCommit, ApplyResult, DeliveryLedger, LedgerChange, LedgerEvent
from delivery_gateway.pubsub import PubSub, conversation_channel, service_channel
from delivery_gateway.webhooks.parse import MalformedWebhook, parse_event

log = logging.getLogger(__name__)

MAX_BATCH = 500  # events applied in one ledger transaction
BACKLOG_LIMIT = 2 * MAX_BATCH  # events acknowledged but not yet applied before new ones wait (admit)
ADMIT_TIMEOUT = 1.0  # seconds a webhook waits for room in the backlog before it is recorded anyway
PUBLISH_TIMEOUT = 5.0  # seconds one change's publishes may take while the append lock is held


class AfterApply(Protocol):
    """Cache work after a commit group: the group's events and their results, in order, in one call."""

    async def after_apply_many(self, events: Sequence[LedgerEvent], results: Sequence[ApplyResult]) -> None: ...


class WebhookProcessor:
    """One worker task consuming (inbox id, event) in arrival order, up to MAX_BATCH at a time.

    Fair to both sides: the worker takes everything queued at once (one transaction for the lot, so applying
    gets cheaper per event as the backlog grows), and `admit` makes new webhooks wait while the backlog is at
    `backlog_limit`, so acknowledging cannot outrun applying for long and a burst cannot queue without bound.
    """

    def __init__(
        self,
        ledger: DeliveryLedger,
        pubsub: PubSub,
        invalidator: AfterApply | None = None,
        *,
        metrics: Metrics | None = None,
        retry_delay: float = 0.5,
        max_batch: int = MAX_BATCH,
        backlog_limit: int = BACKLOG_LIMIT,
        admit_timeout: float = ADMIT_TIMEOUT,
    ) -> None:
        self.ledger = ledger
        self.metrics = metrics if metrics is not None else Metrics()
        self.pubsub = pubsub
        self.invalidator = invalidator
        self.retry_delay = retry_delay
        self.max_batch = max_batch
        self.backlog_limit = backlog_limit
        self.admit_timeout = admit_timeout
        self._queue: asyncio.Queue[tuple[int, LedgerEvent]] = asyncio.Queue()
        self._room = asyncio.Event()  # set while the backlog is below its limit
        self._room.set()
        self._worker: asyncio.Task[None] | None = None
        self._received = Children(self.metrics.webhooks_received)  # (event class, outcome)
        self.processed = 0

    async def start(self) -> int:
        """Publish what a crash left unpublished, reprocess every inbox entry left unprocessed, start the worker."""
        published = await self.ledger.publish_pending(self._after_commit([]))
        if published:
            log.info("published %d ledger changes a previous run committed but never published", published)
        recovered = await self.recover()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="webhook-processor")
        return recovered

    async def recover(self) -> int:
        count = 0
        while True:
            pending = await self.ledger.inbox_pending(limit=self.max_batch)
            if not pending:
                return count
            batch: list[tuple[int, LedgerEvent]] = []
            dropped: list[int] = []
            for entry_id, body in pending:
                try:
                    event = parse_event(json.loads(body))
                except (MalformedWebhook, ValueError):
                    log.error("inbox entry %s is unreadable; dropping it", entry_id)
                    event = None
                if event is None:
                    dropped.append(entry_id)
                else:
                    batch.append((entry_id, event))
            await self.ledger.inbox_done_many(dropped)
            if batch:
                await self.process_batch(batch)
            count += len(pending)

    async def admit(self) -> None:
        """Returns when the backlog has room, or after `admit_timeout` seconds (the webhook is then recorded
        anyway: the inbox is durable, and a stalled store fails the recording on its own)."""
        if self._queue.qsize() < self.backlog_limit:
            return
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.admit_timeout):
                await self._room.wait()

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

    async def process(self, entry_id: int, event: LedgerEvent) -> ApplyResult:
        return (await self.process_batch([(entry_id, event)]))[0]

    async def process_batch(self, items: Sequence[tuple[int, LedgerEvent]]) -> list[ApplyResult]:
        """Apply the inbox entries' events (`apply`) and count them as webhooks; the entries are dropped once the
        cache was updated and the changes published (in the transaction marking them published)."""
        events = [event for _, event in items]
        results = await self.apply(events, inbox_done=[entry_id for entry_id, _ in items])
        counts: dict[tuple[str, str], int] = {}  # one increment per (event type, outcome) of the batch
        for event, result in zip(events, results, strict=True):
            key = (type(event).__name__, _outcome(result))
            counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            self._received(*key).inc(n)
        self.processed += len(items)
        return results

    async def apply(self, events: Sequence[LedgerEvent], *, inbox_done: Sequence[int] = ()) -> list[ApplyResult]:
        """The one way an event changes delivery state, whatever brought it (a webhook, reconciliation): the
        events in one ledger transaction, then (in its hook) the cache updated and the changes published."""
        return await self.ledger.apply_many(events, after_commit=self._after_commit(events), inbox_done=inbox_done)

    def _after_commit(self, events: Sequence[LedgerEvent]) -> AfterCommit:
        async def after_commit(results: Sequence[ApplyResult], unpublished: Sequence[LedgerChange]) -> None:
            if self.invalidator is not None and events:  # before publishing: a re-query must see fresh data
                try:
                    await self.invalidator.after_apply_many(events, results)
                except Exception:
                    log.warning("cache update after %d events failed", len(events), exc_info=True)
            for n, change in enumerate(unpublished):
                if not await self._publish(change):
                    # The broker is failing: the rest of the batch is not published either (the append lock is
                    # held meanwhile); subscribers catch up from the ledger by cursor.
                    log.warning("changes %s were not published", [c.seq for c in unpublished[n + 1 :]])
                    break

        return after_commit

    async def _publish(self, change: LedgerChange) -> bool:
        text = change.to_json()
        channels = [conversation_channel(change.conversation_sid)]
        service_sid = change.payload.get("service_sid")
        if service_sid:
            channels.append(service_channel(service_sid))
        channel = channels[0]
        try:
            # One timer for the change's channels (its conversation's and its service's), not one per publish:
            # arming and cancelling a timer cost as much as an in-process publish. No task, unlike wait_for.
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for channel in channels:
                    await self.pubsub.publish(channel, text)
        except Exception:  # subscribers still get it from the ledger when they resume with their cursor
            log.warning("publishing change %s on %s failed", change.seq, channel, exc_info=True)
            return False
        return True

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.process_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # stays in the inbox; retried shortly, and again on the next start
                log.exception("processing webhook inbox entries %s failed; retrying", [i for i, _ in batch])
                await asyncio.sleep(self.retry_delay)
                for item in batch:
                    self._queue.put_nowait(item)
            finally:
                for _ in batch:
                    self._queue.task_done()
                if self._queue.qsize() < self.backlog_limit:
                    self._room.set()


def _outcome(result: ApplyResult) -> str:
    return "duplicate" if result.duplicate else ("applied" if result.change is not None else "stale")
