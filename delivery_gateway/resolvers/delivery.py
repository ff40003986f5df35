"""Pure delivery rules: a participant's channel, each recipient's status, and the one tick state of a message.

Pure functions over records; never performs I/O, so every rule is unit-testable in isolation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from delivery_gateway.records import DeliveryStatus, MessageRecord, ParticipantRecord, ReceiptRecord


class Channel(StrEnum):
    CHAT = "chat"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    OTHER = "other"


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"


class RecipientSource(StrEnum):
    RECEIPT = "receipt"  # a Twilio delivery receipt (SMS, WhatsApp, other bindings)
    READ_HORIZON = "read_horizon"  # a chat participant's last read message index
    NONE = "none"  # no receipt yet for a non-chat participant


class Ticks(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


TICKS_RULE = (
    "FAILED as soon as any recipient failed or was undelivered (a partial failure is never hidden behind the "
    "others' success); otherwise the lowest state every recipient has reached, PENDING < SENT < DELIVERED < "
    "READ, as WhatsApp groups draw ticks: SENT, DELIVERED and READ only once every recipient has reached it. "
    "Chat participants count as DELIVERED once the message exists and READ once their read horizon "
    "(lastReadMessageIndex) covers it; SMS recipients never go beyond DELIVERED (SMS has no read receipts); "
    "a non-chat recipient without a receipt yet is PENDING. A message with no recipient besides its author "
    "is SENT."
)

_RANK = {
    RecipientStatus.PENDING: 0,
    RecipientStatus.SENT: 1,
    RecipientStatus.DELIVERED: 2,
    RecipientStatus.READ: 3,
}


@dataclass(frozen=True)
class RecipientState:
    participant: ParticipantRecord
    channel: Channel
    status: RecipientStatus
    source: RecipientSource
    error_code: int | None = None
    updated_at: datetime | None = None
    receipt: ReceiptRecord | None = None


def binding_channel(binding_type: str | None) -> Channel:
    kind = (binding_type or "").lower()
    if kind == "sms":
        return Channel.SMS
    if kind == "whatsapp":
        return Channel.WHATSAPP
    return Channel.OTHER


def participant_channel(participant: ParticipantRecord) -> Channel:
    """CHAT for SDK participants (identity, no binding); else the messaging binding's type."""
    binding = participant.messaging_binding
    if binding:
        return binding_channel(binding.get("type"))
    return Channel.CHAT if participant.identity else Channel.OTHER


def receipt_channel(receipt: ReceiptRecord, participant: ParticipantRecord | None) -> Channel:
    """The receipt's channel: the participant's binding when known, else the channel message SID's prefix."""
    if participant is not None and participant.messaging_binding:
        return participant_channel(participant)
    sid = receipt.channel_message_sid or ""
    if sid.startswith(("SM", "MM")):
        return Channel.SMS
    if sid.startswith("WA"):
        return Channel.WHATSAPP
    return Channel.OTHER


def participant_address(participant: ParticipantRecord) -> str | None:
    binding = participant.messaging_binding or {}
    return binding.get("address")


def is_author(participant: ParticipantRecord, message: MessageRecord) -> bool:
    if message.participant_sid and participant.sid == message.participant_sid:
        return True
    if message.author is None:
        return False
    return message.author in {participant.identity, participant_address(participant)}


def recipients_of(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> list[ParticipantRecord]:
    """Every participant other than the message's author, whatever the channel."""
    return [p for p in participants if not is_author(p, message)]


def has_receipt_recipients(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> bool:
    """True when a recipient is reached through a binding, i.e. Twilio may hold receipts for the message."""
    return any(participant_channel(p) is not Channel.CHAT for p in recipients_of(message, participants))


def recipient_state(
    message: MessageRecord, participant: ParticipantRecord, receipt: ReceiptRecord | None
) -> RecipientState:
    channel = participant_channel(participant)
    if channel is Channel.CHAT:
        horizon = participant.last_read_message_index
        if horizon is not None and horizon >= message.index:
            return RecipientState(
                participant,
                channel,
                RecipientStatus.READ,
                RecipientSource.READ_HORIZON,
                updated_at=participant.last_read_timestamp,
            )
        return RecipientState(
            participant,
            channel,
            RecipientStatus.DELIVERED,
            RecipientSource.READ_HORIZON,
            updated_at=message.date_created,
        )
    if receipt is None or receipt.status is None:
        return RecipientState(participant, channel, RecipientStatus.PENDING, RecipientSource.NONE)
    status = RecipientStatus(receipt.status.value)
    if channel is Channel.SMS and status is RecipientStatus.READ:
        status = RecipientStatus.DELIVERED
    return RecipientState(
        participant,
        channel,
        status,
        RecipientSource.RECEIPT,
        error_code=receipt.error_code,
        updated_at=receipt.date_updated or receipt.date_created,
        receipt=receipt,
    )


def latest_receipt_by_participant(receipts: Iterable[ReceiptRecord]) -> dict[str, ReceiptRecord]:
    """One receipt per participant: the most advanced one (terminal statuses outrank the rest)."""
    from delivery_gateway.records import STATUS_RANK

    best: dict[str, ReceiptRecord] = {}
    for receipt in receipts:
        if not receipt.participant_sid:
            continue
        current = best.get(receipt.participant_sid)
        rank = STATUS_RANK.get(receipt.status, 0) if receipt.status else 0
        if current is None or rank >= (STATUS_RANK.get(current.status, 0) if current.status else 0):
            best[receipt.participant_sid] = receipt
    return best


def recipient_states(
    message: MessageRecord,
    participants: Sequence[ParticipantRecord],
    receipts: Iterable[ReceiptRecord],
) -> list[RecipientState]:
    by_participant = latest_receipt_by_participant(receipts)
    return [recipient_state(message, p, by_participant.get(p.sid)) for p in recipients_of(message, participants)]


def ticks_for(states: Iterable[RecipientState]) -> Ticks:
    """The single tick state a chat UI draws; the rule is `TICKS_RULE`."""
    statuses = [state.status for state in states]
    if not statuses:
        return Ticks.SENT
    if any(s in (RecipientStatus.FAILED, RecipientStatus.UNDELIVERED) for s in statuses):
        return Ticks.FAILED
    lowest = min(statuses, key=_RANK.__getitem__)
    return Ticks(lowest.value)


def receipts_final(receipts: Iterable[ReceiptRecord]) -> bool:
    """True when no receipt can change any more (all read/failed/undelivered): cacheable for long."""
    items = list(receipts)
    return bool(items) and all(r.status is not None and DeliveryStatus(r.status).final for r in items)
