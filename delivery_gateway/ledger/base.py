"""The delivery ledger's contract: what the webhook path, subscriptions and reports may ask of it.

Never talks HTTP, caches or pub/sub: it only records events and answers what it recorded. The one
implementation is `ledger.sql.SqlLedger` (SQLite or PostgreSQL); this module holds the contract and its types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from delivery_gateway.delivery.receipts import status_key
from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.ledger.events import (
    ApplyResult,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
)
from delivery_gateway.ledger.reports import FailedDeliveryPage, ReportDimension, ReportRow
from delivery_gateway.ledger.tracking import TrackedReceipt, TrackedStats

# Called by `apply_many` after its transaction committed, with the batch's results and the changes to publish
# (in sequence order), while no other batch can commit: publish there and publish order is sequence order.
AfterCommit = Callable[[Sequence[ApplyResult], Sequence[LedgerChange]], Awaitable[None]]


class LedgerUnavailable(RuntimeError):
    """The store could not be reached or migrated at start-up; the message names it (password hidden)."""


@runtime_checkable
class DeliveryLedger(Protocol):
    """Durable record of webhook events: a raw-event inbox, receipt history, a sequenced change log."""

    # Lifecycle: `start()` connects and migrates the schema; `close()` last; `ping()` for readiness.
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # Inbox: raw webhook bodies recorded before Twilio gets its 200, removed once fully processed.
    async def inbox_add(self, body: str) -> int:
        """Records one body durably before returning its entry id (concurrent calls share one commit)."""
        ...

    async def inbox_add_many(self, bodies: Sequence[str]) -> list[int]:
        """Records every body in one transaction; their entry ids, in the order given."""
        ...

    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]: ...
    async def inbox_done(self, entry_id: int) -> None: ...
    async def inbox_done_many(self, entry_ids: Iterable[int]) -> None: ...

    # Applying events (idempotent, order-insensitive) and reading back.
    async def apply(self, event: LedgerEvent) -> ApplyResult:
        """`apply_many([event])[0]`."""
        ...

    async def apply_many(
        self,
        events: Iterable[LedgerEvent],
        *,
        after_commit: AfterCommit | None = None,
        inbox_done: Sequence[int] = (),
    ) -> list[ApplyResult]:
        """Applies `events` in order, in ONE transaction; one result per event, as if applied one by one.

        Every change gets the next number of one sequence (its cursor), and changes commit in sequence order
        across every process sharing the store. `after_commit(results, unpublished)` runs after the commit and
        before any other batch can commit; `unpublished` is every change not yet handed to a publisher, in
        sequence order: this batch's, preceded by any a process committed but died before handing over. Once
        the hook returns (or raises: it is logged), they count as published. Without a hook they count as
        published at commit. Raises if the transaction fails (nothing of the batch is then recorded).

        `inbox_done`: inbox entries the events came from, removed once the hook returned (with the mark that the
        changes were published: no transaction of its own), or in the batch's transaction without a hook.
        """
        ...

    async def publish_pending(self, after_commit: AfterCommit) -> int:
        """Hands `after_commit` the committed changes no publisher got yet (see apply_many); how many."""
        ...

    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]:
        """The conversation's changes with seq > after_seq, in seq order, at most `limit`."""
        ...

    async def service_changes_after(
        self,
        service_sid: str,
        after_seq: int,
        *,
        statuses: Collection[DeliveryStatus | str] | None = None,
        limit: int = 1000,
    ) -> list[LedgerChange]:
        """The service-wide change stream: every change of the Conversation Service `service_sid` (all its
        conversations, every kind) with seq > after_seq, in seq order, at most `limit`.

        With `statuses` (non-empty), only delivery changes whose receipt moved to one of them. Cursors are the
        same sequence numbers as `changes_after`'s: resume by passing the last seq received; a cursor below
        `pruned_through()` can no longer be resumed without gaps. Changes without a service SID (a webhook that
        named none) belong to no service stream.
        """
        ...

    async def last_seq(self) -> int:
        """The highest sequence number committed (survives pruning; 0 for an empty ledger)."""
        ...

    async def receipt(self, sid: str) -> ReceiptRecord | None: ...
    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]: ...
    async def history(self, receipt_sid: str) -> list[HistoryEntry]: ...
    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]: ...
    async def read_horizon(self, participant_sid: str) -> int | None: ...

    # Questions across conversations. Both cover what reached the gateway (webhooks, and reconciliation like
    # them) and is still retained: history and hourly counts are pruned with the retention.
    async def delivery_report(
        self, service_sid: str, since: datetime, until: datetime, group_by: Sequence[ReportDimension] = ()
    ) -> list[ReportRow]:
        """How many times receipts of the service reached each status in [since, until), grouped by any of
        STATUS, ERROR_CODE, CHANNEL, HOUR, DAY (UTC); no grouping: one row with the total.

        A receipt counts once per status it reached (a late or duplicate webhook never counts twice), at the
        time Twilio says it reached it (when the gateway recorded it, if Twilio gave no time). Rows with a zero
        count are left out; rows are ordered by day, hour, status, error code, channel. `since`/`until` must
        carry a time zone and until > since (ValueError otherwise). Cost: whole hours come from hourly counts,
        only the partial hours at either end are counted from history.
        """
        ...

    async def failed_deliveries(
        self,
        service_sid: str,
        since: datetime,
        until: datetime,
        *,
        error_codes: Collection[int] | None = None,
        retryable: bool | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> FailedDeliveryPage:
        """Recipients whose receipt ENDED failed or undelivered (its current status), failed in [since, until),
        newest first (ties: receipt SID descending), one item per receipt (message × recipient).

        `error_codes`: only these codes. `retryable`: only codes the delivery error table marks retryable
        (True) or the others, receipts without a code included (False). Keyset-paginated: `first` items (0 to
        1000) after the `after` cursor of a previous item (InvalidCursor, a ValueError, for anything else);
        stable while new failures arrive (they land before the first page, not inside later ones).
        """
        ...

    # Tracked receipts: what reconciliation re-reads from Twilio (ledger/tracking.py). Applying a delivery event
    # tracks its receipt in the same transaction (or forgets it once its status cannot change any more).
    async def track_receipts(self, receipts: Iterable[ReceiptRecord], *, service_sid: str | None = None) -> int:
        """A query read these receipts from Twilio: track those that can still change and are not tracked yet
        (`service_sid`: the scope they were read in, for receipts that do not name their service); how many."""
        ...

    async def claim_tracked(
        self, owner: str, *, period: float, lease: float, window: float, limit: int = 100
    ) -> list[TrackedReceipt]:
        """Leases to `owner`, until now + `lease`, every due receipt (last checked `period` or more ago, not
        leased, created less than `window` ago) of up to `limit` messages, and marks them checked now: a
        second claimer (another replica) gets none of them. Drops receipts older than the window."""
        ...

    async def settle_tracked(
        self,
        owner: str,
        *,
        seen: Sequence[ReceiptRecord] = (),
        service_sid: str | None = None,
        gone: Sequence[str] = (),
        released: Sequence[str] = (),
    ) -> None:
        """After a poll, in one transaction: `seen` receipts as Twilio now reports them (tracked on if they can
        still change, else forgotten), `gone` receipts forgotten, `owner`'s leases on `released` ended."""
        ...

    async def tracked_stats(self, *, period: float, window: float) -> TrackedStats:
        """How many receipts are tracked, how many are due, and how overdue the most overdue one is."""
        ...

    # Retention: drop change-log entries, dedupe keys and history recorded before `before`. Never drops
    # unprocessed inbox entries, current receipt records, read horizons or the sequence counter.
    async def prune(self, before: datetime) -> PruneResult: ...
    async def pruned_through(self) -> int: ...

    # Resend links (old message -> new message), both ways.
    async def record_resend(self, conversation_sid: str, old_sid: str, new_sid: str) -> None: ...
    async def resent_as(self, old_sid: str) -> list[str]: ...
    async def resend_of(self, new_sid: str) -> str | None: ...


def sort_history(entries: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """History in the order things happened (Twilio's time), ties by status rank: independent of arrival."""
    return sorted(entries, key=lambda e: (e.at or "", status_key(e.status, e.at)))
