"""The delivery ledger's contract, and the apply rules shared by the embedded (memory, SQLite) backends.

Never talks HTTP, caches or pub/sub: it only records events and answers what it recorded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

from delivery_gateway.delivery.receipts import merge_receipt, status_key
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    ConversationEvent,
    DeliveryEvent,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    MessageEvent,
    PruneResult,
    ReadHorizonEvent,
    delivery_change_payload,
    event_to_dict,
)


@runtime_checkable
class DeliveryLedger(Protocol):
    """Durable record of webhook events: a raw-event inbox, receipt history, a sequenced change log."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    # Inbox: raw webhook bodies recorded before Twilio gets its 200, removed once fully processed.
    async def inbox_add(self, body: str) -> int: ...
    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]: ...
    async def inbox_done(self, entry_id: int) -> None: ...

    # Applying events (idempotent, order-insensitive) and reading back.
    async def apply(self, event: LedgerEvent) -> ApplyResult: ...
    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]: ...
    async def last_seq(self) -> int: ...
    async def receipt(self, sid: str) -> ReceiptRecord | None: ...
    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]: ...
    async def history(self, receipt_sid: str) -> list[HistoryEntry]: ...
    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]: ...
    async def read_horizon(self, participant_sid: str) -> int | None: ...

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


class SyncLedgerCore(ABC):
    """Apply rules over synchronous storage primitives; each `apply_sync` runs as one transaction."""

    # --- primitives a backend provides ---
    @abstractmethod
    def _seen(self, key: str) -> int | None:
        """Seq stored for an applied dedupe key (0: applied without a change), None when never applied."""

    @abstractmethod
    def _mark_seen(self, key: str, seq: int) -> None: ...

    @abstractmethod
    def _get_receipt(self, sid: str) -> ReceiptRecord | None: ...

    @abstractmethod
    def _put_receipt(self, record: ReceiptRecord) -> None: ...

    @abstractmethod
    def _add_history(self, receipt_sid: str, entry: HistoryEntry) -> None: ...

    @abstractmethod
    def _append_change(self, kind: ChangeKind, conversation_sid: str, payload: dict) -> LedgerChange: ...

    @abstractmethod
    def _get_change(self, seq: int) -> LedgerChange | None: ...

    @abstractmethod
    def _get_horizon(self, participant_sid: str) -> int | None: ...

    @abstractmethod
    def _put_horizon(self, participant_sid: str, index: int) -> None: ...

    # --- the rules ---
    def apply_sync(self, event: LedgerEvent) -> ApplyResult:
        key = event.dedupe_key
        seen = self._seen(key)
        if seen is not None:
            return ApplyResult(change=self._get_change(seen) if seen else None, duplicate=True)
        if isinstance(event, DeliveryEvent):
            result = self._apply_delivery(event)
        elif isinstance(event, ReadHorizonEvent):
            result = self._apply_horizon(event)
        elif isinstance(event, MessageEvent):
            change = self._append_change(ChangeKind.MESSAGE, event.conversation_sid, event_to_dict(event))
            result = ApplyResult(change=change, recorded=True)
        elif isinstance(event, ConversationEvent):
            change = self._append_change(ChangeKind.CONVERSATION, event.conversation_sid, event_to_dict(event))
            result = ApplyResult(change=change, recorded=True)
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"not a ledger event: {event!r}")
        self._mark_seen(key, result.change.seq if result.change else 0)
        return result

    def _apply_delivery(self, event: DeliveryEvent) -> ApplyResult:
        previous = self._get_receipt(event.receipt_sid)
        merge = merge_receipt(previous, event.as_receipt())
        change = None
        if merge.changed:
            self._put_receipt(merge.receipt)  # a stale status may still fill in identity fields
        if merge.status_changed:
            prev_status = previous.status if previous else None
            change = self._append_change(
                ChangeKind.DELIVERY, event.conversation_sid, delivery_change_payload(merge.receipt, prev_status)
            )
        entry = HistoryEntry(
            status=event.status,
            error_code=event.error_code,
            at=event.date_updated,
            source=event.source,
            recorded_seq=change.seq if change else 0,
        )
        self._add_history(event.receipt_sid, entry)
        return ApplyResult(change=change, recorded=True)

    def _apply_horizon(self, event: ReadHorizonEvent) -> ApplyResult:
        index = event.last_read_message_index
        if index is None:
            return ApplyResult(change=None)
        previous = self._get_horizon(event.participant_sid)
        if previous is not None and index <= previous:
            return ApplyResult(change=None, recorded=False)
        self._put_horizon(event.participant_sid, index)
        payload = event_to_dict(event)
        payload["previous_index"] = previous
        change = self._append_change(ChangeKind.READ_HORIZON, event.conversation_sid, payload)
        return ApplyResult(change=change, recorded=True)
