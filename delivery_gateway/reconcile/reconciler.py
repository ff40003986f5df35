"""The reconciler: every `DELIVERY_GATEWAY_RECONCILE_SECONDS`, re-reads the tracked receipts that are due (one
receipts list per message) and applies what Twilio reports differently from what the gateway knows.

What it must never do: poll a receipt another replica is polling (the ledger's leases decide), use more than its
share of the upstream concurrency, keep polling while Twilio answers 429, or apply a change any other way than a
webhook is applied (the ingest's `apply`: ledger, history with `source` "reconcile", cache, pub/sub). Applied
changes carry the same dedupe keys as webhooks, so the webhook that arrives late is a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import ApplyResult, DeliveryLedger, LedgerEvent
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.ledger.tracking import TrackedReceipt
from delivery_gateway.upstream.api import ConversationsAPI
from delivery_gateway.upstream.errors import UpstreamError, UpstreamNotFound, UpstreamRateLimited

log = logging.getLogger(__name__)

SOURCE = "reconcile"  # the receipt history's `source` of what reconciliation applied
MESSAGES_PER_CLAIM = 50  # messages leased per claim: a pass claims again until nothing is due
LEASE_FLOOR = 2.0  # seconds: a lease (and so one receipts list) lasts at least this long, whatever the settings
TICKS_PER_PERIOD = 4  # passes per period: a receipt is re-read at most a quarter period after it became due
MAX_BACKOFF_PERIODS = 16  # rate-limited: the pause doubles from one period up to this many

Apply = Callable[[Sequence[LedgerEvent]], Awaitable[list[ApplyResult]]]


@dataclass
class PassResult:
    """What one pass did: messages and receipts re-read, changes applied, lists that failed, whether Twilio
    rate-limited it (and the Retry-After it gave, if any)."""

    messages: int = 0
    receipts: int = 0
    changes: int = 0
    errors: int = 0
    rate_limited: bool = False
    retry_after: float | None = None


def _owner_id() -> str:
    """This process's name on the leases it holds: unique per process start."""
    return f"{socket.gethostname()[:40]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _value(status: DeliveryStatus | str | None) -> str | None:
    return (
        None if status is None else str(DeliveryStatus(status).value if isinstance(status, DeliveryStatus) else status)
    )


class Reconciler:
    """One process's reconciler. `start()` after the ledger and the ingest started (its first pass runs at once:
    it catches up on what changed while no process was reconciling); `close()` before them."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: DeliveryLedger,
        upstream: ConversationsAPI,
        apply: Apply,
        metrics: Metrics,
        owner: str | None = None,
        messages_per_claim: int = MESSAGES_PER_CLAIM,
    ) -> None:
        self.period = settings.reconcile_seconds
        self.window = settings.reconcile_window
        # A lease outlives the longest a Receipts list may take (the client rides out 429s for its budget first),
        # so a poll is never cut short before Twilio's answer, nor outlives the lease that keeps it this replica's.
        longest_call = (
            settings.upstream_connect_timeout + settings.upstream_read_timeout + settings.upstream_rate_limit_budget
        )
        self.lease = max(self.period, LEASE_FLOOR, longest_call)
        self.parallelism = settings.reconcile_parallelism
        self.ledger = ledger
        self.upstream = upstream
        self.apply = apply
        self.metrics = metrics
        self.owner = owner if owner is not None else _owner_id()
        self.messages_per_claim = messages_per_claim
        self.backoff = 0.0  # seconds of the current rate-limit pause (0: not rate-limited)
        self.passes = 0
        self._semaphore = asyncio.Semaphore(self.parallelism)
        self._held: set[str] = set()  # receipts this process holds a lease on
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.period > 0

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="reconciler")

    async def close(self) -> None:
        """Stops the loop and hands back every lease still held, so another replica need not wait for them."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._held:
            held, self._held = sorted(self._held), set()
            try:
                await self.ledger.settle_tracked(self.owner, released=held)
            except Exception:  # the leases expire on their own
                log.warning("could not release %d reconciliation leases", len(held), exc_info=True)

    async def _run(self) -> None:
        while True:
            try:
                result = await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # never fatal: the ledger may be briefly unavailable; the next pass tries again
                log.exception("reconciliation pass failed")
                result = PassResult(errors=1)
            await asyncio.sleep(self.next_delay(result))

    def next_delay(self, result: PassResult) -> float:
        """Seconds until the next pass: a quarter period; after a 429, a pause doubling from one period (at
        least Twilio's Retry-After), reset by the next pass Twilio does not rate-limit."""
        if not result.rate_limited:
            self.backoff = 0.0
            return self.period / TICKS_PER_PERIOD
        self.backoff = min(self.period * MAX_BACKOFF_PERIODS, max(self.period, self.backoff * 2))
        return max(self.backoff, result.retry_after or 0.0)

    async def run_pass(self) -> PassResult:
        """Re-reads every receipt due at its start, claiming a batch of messages at a time, until none is left
        (another replica may take some), or Twilio rate-limits the gateway."""
        self.passes += 1
        due = await self._observe()  # a pass takes what is due at its start: it ends even when it cannot keep up
        result = PassResult()
        taken = 0
        while taken < due and not result.rate_limited:
            deadline = asyncio.get_running_loop().time() + self.lease  # the leases end then, or later
            claimed = await self.ledger.claim_tracked(
                self.owner, period=self.period, lease=self.lease, window=self.window, limit=self.messages_per_claim
            )
            if not claimed:
                break
            taken += len(claimed)
            self._held.update(t.receipt_sid for t in claimed)
            by_message: dict[str, list[TrackedReceipt]] = {}
            for row in claimed:
                by_message.setdefault(row.message_sid, []).append(row)
            polls = await asyncio.gather(
                *(self._poll(rows, result, deadline) for rows in by_message.values()), return_exceptions=True
            )
            for failure in polls:
                if isinstance(failure, Exception):  # the ledger failed: its leases expire, retried after them
                    result.errors += 1
                    log.warning("reconciliation could not record a poll: %r", failure)
                elif isinstance(failure, BaseException):
                    raise failure
        return result

    async def _observe(self) -> int:
        """Sets the tracked and lag gauges; how many receipts are due now."""
        stats = await self.ledger.tracked_stats(period=self.period, window=self.window)
        self.metrics.reconcile_tracked.set(stats.tracked)
        self.metrics.reconcile_lag.set(stats.lag)
        return stats.due

    async def _poll(self, rows: list[TrackedReceipt], result: PassResult, deadline: float) -> None:
        """One message: its receipts list, what differs applied, the tracked rows settled and released. The list
        is asked for before `deadline` (loop time; the claim's leases end no earlier) or not at all."""
        sids = [row.receipt_sid for row in rows]
        first = rows[0]
        records: list[ReceiptRecord] | None = None
        outcome = "skipped"
        try:
            async with asyncio.timeout_at(deadline):  # a poll never outlives its lease, waiting included
                async with self._semaphore:  # the reconciler's share of the upstream concurrency
                    if not result.rate_limited:  # else released below: polled again once the pause is over
                        records = await self.upstream.list_receipts(
                            first.conversation_sid, first.message_sid, service_sid=first.service_sid
                        )
                        outcome = "ok"
        except UpstreamNotFound:  # the message (or conversation) was deleted: nothing left to reconcile
            outcome = "gone"
        except UpstreamRateLimited as exc:
            outcome = "rate_limited"
            result.rate_limited = True
            result.retry_after = max(result.retry_after or 0.0, exc.retry_after or 0.0) or None
        except (UpstreamError, TimeoutError) as exc:
            outcome = "error"
            result.errors += 1
            log.warning("reconciling message %s failed: %r", first.message_sid, exc)
        if outcome != "skipped":
            self.metrics.reconcile_polls.labels(outcome).inc()
        if records is not None:
            result.messages += 1
            result.receipts += len(rows)
            self.metrics.reconcile_polled.inc(len(rows))
            result.changes += await self._apply_found(rows, records)
            returned = {r.sid for r in records}
            gone = [sid for sid in sids if sid not in returned]
            await self.ledger.settle_tracked(
                self.owner, seen=records, service_sid=first.service_sid, gone=gone, released=sids
            )
        elif outcome == "gone":
            await self.ledger.settle_tracked(self.owner, gone=sids, released=sids)
        else:  # checked at the claim: retried one period later (a failing Twilio is not hammered meanwhile)
            await self.ledger.settle_tracked(self.owner, released=sids)
        self._held.difference_update(sids)

    async def _apply_found(self, rows: list[TrackedReceipt], records: list[ReceiptRecord]) -> int:
        """Applies, through the ingest, each receipt whose status differs from what the gateway knows (the
        ledger's record, else the status tracked from a query); how many changes that made."""
        known: dict[str, str | None] = {row.receipt_sid: row.status for row in rows}
        for record in await self.ledger.receipts_for_message(rows[0].message_sid):
            known[record.sid] = _value(record.status)
        service_sid = rows[0].service_sid
        events: list[LedgerEvent] = [
            DeliveryEvent.from_receipt(record, source=SOURCE, service_sid=service_sid)
            for record in records
            if record.status is not None and (record.sid not in known or known[record.sid] != _value(record.status))
        ]
        if not events:
            return 0
        changes = 0
        for event, applied in zip(events, await self.apply(events), strict=True):
            if applied.change is not None and not applied.duplicate and isinstance(event, DeliveryEvent):
                changes += 1
                self.metrics.reconcile_changes.labels(event.status.value).inc()
        return changes
