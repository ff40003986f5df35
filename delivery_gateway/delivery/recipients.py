"""Who receives a message (every participant but its author) and each recipient's state for it.

Pure functions over records; never performs I/O. Chat participants' state comes from their read horizon,
everyone else's from Twilio's delivery receipts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from delivery_gateway.delivery.channels import Channel, participant_address, participant_channel
from delivery_gateway.delivery.statuses import rank
from delivery_gateway.kernel.records import MessageRecord, ParticipantRecord, ReceiptRecord


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


@dataclass(frozen=True)
class RecipientState:
    participant: ParticipantRecord
    channel: Channel
    status: RecipientStatus
    source: RecipientSource
    error_code: int | None = None
    updated_at: datetime | None = None
    receipt: ReceiptRecord | None = None


def is_author(participant: ParticipantRecord, message: MessageRecord) -> bool:
    """The participant wrote the message: by participant SID, else by identity or binding address."""
    if message.participant_sid and participant.sid == message.participant_sid:
        return True
    if message.author is None:
        return False
    return message.author in {participant.identity, participant_address(participant)}


def author_of(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> ParticipantRecord | None:
    """The author's participant record: by participant SID first, then identity/address; None for API sends."""
    candidates = list(participants)
    for participant in candidates:
        if message.participant_sid and participant.sid == message.participant_sid:
            return participant
    if message.author:
        for participant in candidates:
            if message.author in (participant.identity, participant_address(participant)):
                return participant
    return None


def recipient_participants(
    message: MessageRecord, participants: Iterable[ParticipantRecord]
) -> list[ParticipantRecord]:
    """Every participant other than the message's author, whatever the channel."""
    return [p for p in participants if not is_author(p, message)]


def has_receipt_recipients(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> bool:
    """True when a recipient is reached through a binding, i.e. Twilio may hold receipts for the message."""
    return any(participant_channel(p) is not Channel.CHAT for p in recipient_participants(message, participants))


def receipts_expected(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> bool:
    """Twilio keeps receipts only for recipients reached through a binding (SMS, WhatsApp...)."""
    delivery = message.delivery or {}
    return bool(delivery.get("total")) or has_receipt_recipients(message, participants)


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
    best: dict[str, ReceiptRecord] = {}
    for receipt in receipts:
        if not receipt.participant_sid:
            continue
        current = best.get(receipt.participant_sid)
        if current is None or rank(receipt.status) >= rank(current.status):
            best[receipt.participant_sid] = receipt
    return best


def recipient_states(
    message: MessageRecord,
    participants: Sequence[ParticipantRecord],
    receipts: Iterable[ReceiptRecord],
) -> list[RecipientState]:
    """Every recipient's state for the message, in participant order."""
    by_participant = latest_receipt_by_participant(receipts)
    return [
        recipient_state(message, p, by_participant.get(p.sid)) for p in recipient_participants(message, participants)
    ]
