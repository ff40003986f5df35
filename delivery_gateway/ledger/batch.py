"""Applies a batch of events to a snapshot of the ledger's state, in memory, with the one set of merge rules.

Pure: never performs I/O. The SQL ledger loads the snapshot (rows locked) inside a transaction, plans the batch
here, and writes the plan in the same transaction, so a batch behaves exactly like its events applied one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from delivery_gateway.delivery.receipts import merge_receipt
from delivery_gateway.delivery.unread import horizon_replaces
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    ConversationEvent,
    DeliveryEvent,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    MembershipEvent,
    MessageEvent,
    ReadHorizonEvent,
    delivery_change_payload,
    event_to_dict,
)

Horizon = tuple[int, str | None]  # a participant's read horizon and the DateUpdated of the report that set it


@dataclass
class Snapshot:
    """What the batch's events can touch, as stored before the batch."""

    last_seq: int  # the sequence: the batch's changes get last_seq + 1, + 2, ...
    seen: dict[str, int] = field(default_factory=dict)  # dedupe key -> seq of its change (0: none)
    changes: dict[int, LedgerChange] = field(default_factory=dict)  # the changes `seen` points at, if kept
    receipts: dict[str, ReceiptRecord] = field(default_factory=dict)
    history: set[tuple[str, str]] = field(default_factory=set)  # (receipt sid, status) already recorded
    horizons: dict[str, Horizon] = field(default_factory=dict)


@dataclass
class BatchPlan:
    """What to write: every row is final (a receipt touched twice in the batch appears once, in its end state)."""

    last_seq: int
    results: list[ApplyResult] = field(default_factory=list)  # one per event, in order
    changes: list[LedgerChange] = field(default_factory=list)  # in sequence order
    receipts: dict[str, ReceiptRecord] = field(default_factory=dict)
    history: list[tuple[ReceiptRecord, HistoryEntry]] = field(default_factory=list)  # entry + receipt at that time
    seen: dict[str, int] = field(default_factory=dict)
    horizons: dict[str, Horizon] = field(default_factory=dict)


def plan_batch(events: Iterable[LedgerEvent], snapshot: Snapshot) -> BatchPlan:
    """Apply `events` in order to `snapshot` (left untouched) and return what changed.

        Idempotent and order-insensitive per event, as the ledger contract promises: an event whose dedupe key was
        applied is a duplicate (its original change, when kept, is returned); a receipt merges each reported status
        with `delivery.receipts.merge_receipt`; a read horizon takes the latest report, back as well as forward
    (`delivery.unread.horizon_replaces`).
    """
    return _Planner(snapshot).run(events)


class _Planner:
    def __init__(self, snapshot: Snapshot) -> None:
        self.plan = BatchPlan(last_seq=snapshot.last_seq)
        self.seen = dict(snapshot.seen)
        self.changes = dict(snapshot.changes)
        self.receipts = dict(snapshot.receipts)
        self.history = set(snapshot.history)
        self.horizons = dict(snapshot.horizons)

    def run(self, events: Iterable[LedgerEvent]) -> BatchPlan:
        for event in events:
            self.plan.results.append(self._apply(event))
        return self.plan

    def _apply(self, event: LedgerEvent) -> ApplyResult:
        key = event.dedupe_key
        if key in self.seen:
            seq = self.seen[key]
            return ApplyResult(change=self.changes.get(seq) if seq else None, duplicate=True)
        if isinstance(event, DeliveryEvent):
            result = self._delivery(event)
        elif isinstance(event, ReadHorizonEvent):
            result = self._horizon(event)
        elif isinstance(event, MessageEvent):
            change = self._append(ChangeKind.MESSAGE, event.conversation_sid, event_to_dict(event))
            result = ApplyResult(change, recorded=True)
        elif isinstance(event, ConversationEvent):
            change = self._append(ChangeKind.CONVERSATION, event.conversation_sid, event_to_dict(event))
            result = ApplyResult(change, recorded=True)
        elif isinstance(event, MembershipEvent):
            result = ApplyResult(change=None)  # deduplicated only: membership is read from Twilio, not the ledger
        else:  # pragma: no cover - exhaustive
            raise TypeError(f"not a ledger event: {event!r}")
        self.seen[key] = self.plan.seen[key] = result.change.seq if result.change else 0
        return result

    def _append(self, kind: ChangeKind, conversation_sid: str, payload: dict) -> LedgerChange:
        self.plan.last_seq += 1
        change = LedgerChange(self.plan.last_seq, kind, conversation_sid, payload)
        self.plan.changes.append(change)
        self.changes[change.seq] = change
        return change

    def _put_receipt(self, record: ReceiptRecord) -> None:
        self.receipts[record.sid] = self.plan.receipts[record.sid] = record

    def _delivery(self, event: DeliveryEvent) -> ApplyResult:
        previous = self.receipts.get(event.receipt_sid)
        merge = merge_receipt(previous, event.as_receipt())  # the one merge rule (delivery/receipts.py)
        receipt = merge.receipt
        change = None
        if merge.changed:
            self._put_receipt(receipt)  # a stale status may still fill in identity fields
        if merge.status_changed:
            prev_status = previous.status if previous else None
            change = self._append(
                ChangeKind.DELIVERY, event.conversation_sid, delivery_change_payload(receipt, prev_status)
            )
        recorded = (event.receipt_sid, event.status.value) not in self.history
        if recorded:  # a receipt takes each status once: a repeat (after its dedupe key aged out) adds nothing
            self.history.add((event.receipt_sid, event.status.value))
            entry = HistoryEntry(
                status=event.status,
                error_code=event.error_code,
                at=event.date_updated or event.date_created,  # never updated: its status since creation
                source=event.source,
                recorded_seq=change.seq if change else 0,
            )
            self.plan.history.append((receipt, entry))
        return ApplyResult(change=change, recorded=recorded)

    def _horizon(self, event: ReadHorizonEvent) -> ApplyResult:
        index = event.last_read_message_index
        if index is None:
            return ApplyResult(change=None)
        stored = self.horizons.get(event.participant_sid)
        if not horizon_replaces(stored, index, event.date_updated):
            return ApplyResult(change=None, recorded=False)
        self.horizons[event.participant_sid] = self.plan.horizons[event.participant_sid] = (index, event.date_updated)
        previous = stored[0] if stored is not None else None
        if previous == index:  # a later report of the same horizon: only its date is kept (no change to publish)
            return ApplyResult(change=None, recorded=False)
        payload = event_to_dict(event)
        payload["previous_index"] = previous
        change = self._append(ChangeKind.READ_HORIZON, event.conversation_sid, payload)
        return ApplyResult(change=change, recorded=True)
