"""Typed Twilio post-events as the ledger applies them, and the changes and history entries it records.

Pure data only: never performs I/O, never knows about HTTP, caches or pub/sub. How a delivery event changes a
receipt is a delivery rule (delivery/receipts.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord, compact_json, parse_datetime

# A string as `compact_json` writes it (ASCII, escaped): json's own C encoder for strings.
_json_string = json.encoder.encode_basestring_ascii


def _iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC, as webhooks/parse.py spells webhook dates (dates compare as strings)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


class ChangeKind(StrEnum):
    DELIVERY = "delivery"
    READ_HORIZON = "read_horizon"
    MESSAGE = "message"
    CONVERSATION = "conversation"


@dataclass(frozen=True)
class DeliveryEvent:
    """onDeliveryUpdated: one receipt reached `status` at `date_updated`."""

    conversation_sid: str
    message_sid: str
    receipt_sid: str
    status: DeliveryStatus
    participant_sid: str | None = None
    channel_message_sid: str | None = None
    error_code: int | None = None
    date_created: str | None = None
    date_updated: str | None = None
    service_sid: str | None = None
    account_sid: str | None = None
    source: str = "webhook"

    @property
    def dedupe_key(self) -> str:
        # A receipt takes each status at most once: the status itself identifies the transition.
        return f"dlv:{self.receipt_sid}:{self.status.value}"

    @classmethod
    def from_receipt(cls, record: ReceiptRecord, *, source: str, service_sid: str | None = None) -> DeliveryEvent:
        """The event a webhook would have carried for `record` as Twilio's REST API reports it (dates in the
        webhooks' canonical spelling, so either path orders statuses alike); `record.status` must be set."""
        if record.status is None:
            raise ValueError(f"receipt {record.sid} has no status to apply")
        return cls(
            conversation_sid=record.conversation_sid,
            message_sid=record.message_sid,
            receipt_sid=record.sid,
            status=record.status,
            participant_sid=record.participant_sid,
            channel_message_sid=record.channel_message_sid,
            error_code=record.error_code,
            date_created=_iso(record.date_created),
            date_updated=_iso(record.date_updated),
            service_sid=record.chat_service_sid or service_sid,
            account_sid=record.account_sid,
            source=source,
        )

    def as_receipt(self) -> ReceiptRecord:
        """The receipt as this one webhook describes it (what `delivery.receipts.merge_receipt` merges): what
        `ReceiptRecord.from_dict` reads from the event's fields, built directly (once per applied event, on the
        ledger's thread: the generic dict round trip was a visible share of a batch)."""
        return ReceiptRecord(
            sid=self.receipt_sid,
            conversation_sid=self.conversation_sid,
            message_sid=self.message_sid,
            participant_sid=self.participant_sid,
            account_sid=self.account_sid,
            chat_service_sid=self.service_sid,
            channel_message_sid=self.channel_message_sid,
            status=self.status,
            error_code=self.error_code or None,  # from_dict's rule: 0 is no error
            date_created=parse_datetime(self.date_created),
            date_updated=parse_datetime(self.date_updated),
            reported_status=self.status.value,
        )


@dataclass(frozen=True)
class ReadHorizonEvent:
    """onParticipantUpdated: a participant's read horizon (last read message index)."""

    conversation_sid: str
    participant_sid: str
    last_read_message_index: int | None
    identity: str | None = None
    last_read_timestamp: str | None = None
    date_updated: str | None = None
    service_sid: str | None = None
    account_sid: str | None = None

    @property
    def dedupe_key(self) -> str:
        # A horizon may come back to an index it had (read, marked unread, read again): its date tells them apart.
        base = f"rh:{self.participant_sid}:{self.last_read_message_index}"
        return f"{base}:{self.date_updated}" if self.date_updated else base


@dataclass(frozen=True)
class MessageEvent:
    """onMessageAdded / onMessageUpdated / onMessageRemoved."""

    action: str  # added | updated | removed
    conversation_sid: str
    message_sid: str
    index: int | None = None
    author: str | None = None
    body: str | None = None
    attributes: str | None = None
    media: list[dict[str, Any]] | None = None
    participant_sid: str | None = None
    date_created: str | None = None
    date_updated: str | None = None
    service_sid: str | None = None
    account_sid: str | None = None

    @property
    def dedupe_key(self) -> str:
        if self.action == "updated":
            digest = json.dumps([self.date_updated, self.body, self.attributes], separators=(",", ":"))
            return f"msg:{self.message_sid}:updated:{digest}"
        return f"msg:{self.message_sid}:{self.action}"


@dataclass(frozen=True)
class ConversationEvent:
    """onConversationUpdated / onConversationStateUpdated."""

    action: str  # updated | state_updated
    conversation_sid: str
    state: str | None = None
    state_from: str | None = None
    friendly_name: str | None = None
    unique_name: str | None = None
    attributes: str | None = None
    date_updated: str | None = None
    service_sid: str | None = None
    account_sid: str | None = None

    @property
    def dedupe_key(self) -> str:
        digest = json.dumps(
            [
                self.action,
                self.state,
                self.friendly_name,
                self.unique_name,
                self.attributes,
                self.date_updated,
            ],
            separators=(",", ":"),
        )
        return f"conv:{self.conversation_sid}:{digest}"


@dataclass(frozen=True)
class MembershipEvent:
    """onParticipantAdded / onParticipantRemoved: who belongs to the conversation changed.

    Membership is not delivery state: the ledger only deduplicates it (no change is recorded or published); what
    it changes is what the caches hold of the conversation's participants (webhooks/invalidation.py).
    """

    action: str  # added | removed
    conversation_sid: str
    participant_sid: str
    identity: str | None = None
    date_updated: str | None = None
    service_sid: str | None = None
    account_sid: str | None = None

    @property
    def dedupe_key(self) -> str:
        # A participant SID joins once and leaves once (joining again creates another participant).
        return f"mbr:{self.participant_sid}:{self.action}"


LedgerEvent = DeliveryEvent | ReadHorizonEvent | MessageEvent | ConversationEvent | MembershipEvent


@dataclass(frozen=True)
class HistoryEntry:
    """One status a receipt took, in the order the ledger learnt of them."""

    status: DeliveryStatus
    error_code: int | None
    at: str | None  # Twilio's DateUpdated of that status (its DateCreated before the receipt's first update)
    source: str
    recorded_seq: int  # ledger sequence when recorded (0 when the entry changed nothing)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            status=DeliveryStatus(data["status"]),
            error_code=data.get("error_code"),
            at=data.get("at"),
            source=data.get("source") or "webhook",
            recorded_seq=int(data.get("recorded_seq") or 0),
        )


@dataclass(frozen=True)
class LedgerChange:
    """One applied change: what subscribers receive and what a resuming client replays, in `seq` order."""

    seq: int
    kind: ChangeKind
    conversation_sid: str
    payload: dict[str, Any] = field(default_factory=dict)
    # `payload_json`, once encoded: the change log's column and every publish of the change share one encoding.
    _payload_json: str | None = field(default=None, compare=False, repr=False)

    @property
    def cursor(self) -> str:
        return str(self.seq)

    @property
    def payload_json(self) -> str:
        """The payload as compact JSON (`compact_json`), encoded on first use. A change's payload is never changed
        once the change exists."""
        text = self._payload_json
        if text is None:
            text = compact_json(self.payload)
            object.__setattr__(self, "_payload_json", text)
        return text

    def to_json(self) -> str:
        """`compact_json` of {seq, kind, conversation_sid, payload}, around the payload's own encoding."""
        return (
            f'{{"seq":{int(self.seq)},"kind":{_json_string(self.kind.value)},'
            f'"conversation_sid":{_json_string(self.conversation_sid)},"payload":{self.payload_json}}}'
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LedgerChange:
        data = json.loads(text)
        return cls(
            seq=int(data["seq"]),
            kind=ChangeKind(data["kind"]),
            conversation_sid=data["conversation_sid"],
            payload=data.get("payload") or {},
        )

    # Convenience accessors for delivery changes.
    @property
    def receipt(self) -> ReceiptRecord | None:
        data = self.payload.get("receipt")
        return ReceiptRecord.from_dict(data) if data else None

    @property
    def previous_status(self) -> DeliveryStatus | None:
        value = self.payload.get("previous_status")
        return DeliveryStatus(value) if value else None


@dataclass(frozen=True)
class ApplyResult:
    """What applying one event did. `change` is None when nothing observable changed (duplicate or stale)."""

    change: LedgerChange | None
    duplicate: bool = False  # the exact event was applied before; `change` then is the original change, if any
    recorded: bool = False  # a new history entry was kept (possibly without changing the current state)


@dataclass(frozen=True)
class PruneResult:
    """What one `prune(before)` removed, per kind, and the change-log watermark afterwards.

    `pruned_through`: every change with `seq <= pruned_through` is gone (the log is pruned as a prefix in
    sequence order), so a cursor below it can no longer be resumed; 0 while nothing was ever pruned.
    """

    changes: int = 0
    dedupe_keys: int = 0
    history: int = 0
    pruned_through: int = 0

    @property
    def total(self) -> int:
        return self.changes + self.dedupe_keys + self.history


def delivery_change_payload(receipt: ReceiptRecord, previous_status: DeliveryStatus | None) -> dict[str, Any]:
    return {
        "receipt": receipt.to_dict(),
        "message_sid": receipt.message_sid,
        "previous_status": previous_status.value if previous_status else None,
        "service_sid": receipt.chat_service_sid,
    }


def event_to_dict(event: LedgerEvent) -> dict[str, Any]:
    out = asdict(event)
    if isinstance(event, DeliveryEvent):
        out["status"] = event.status.value
    return out
