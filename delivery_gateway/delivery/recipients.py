"""Who a message was sent to, and each recipient's state for it.

Pure functions over records; never performs I/O. The recipients are the participants the message was sent to:
every participant but the author who was present when it was created (Twilio: a new participant "will receive
all subsequent messages"), plus whoever holds a receipt for it — a participant removed since keeps its receipts
(Twilio: "their previous messages will remain in the conversation") and stays a recipient, shown as removed.
Chat participants' state comes from their read horizon, everyone else's from Twilio's delivery receipts; a
receipt whose status is not one a recipient can be in (null, queued, a status Twilio has not documented yet)
leaves its recipient PENDING.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from delivery_gateway.delivery.channels import Channel, participant_address, participant_channel, receipt_channel
from delivery_gateway.delivery.statuses import rank
from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord, ParticipantRecord, ReceiptRecord


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
    removed: bool = False  # the participant left the conversation; known from its receipt only


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


def was_present(participant: ParticipantRecord, message: MessageRecord) -> bool:
    """The participant had joined when the message was created (equal times count: Twilio's REST dates have
    whole seconds, and a recipient wrongly dropped would hide its state; unknown times count too)."""
    if participant.date_created is None or message.date_created is None:
        return True
    return participant.date_created <= message.date_created


def recipient_participants(
    message: MessageRecord, participants: Iterable[ParticipantRecord]
) -> list[ParticipantRecord]:
    """The current participants the message was sent to: present at its creation, other than its author."""
    return [p for p in participants if not is_author(p, message) and was_present(p, message)]


def has_receipt_recipients(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> bool:
    """True when a recipient is reached through a binding, i.e. Twilio may hold receipts for the message."""
    return any(participant_channel(p) is not Channel.CHAT for p in recipient_participants(message, participants))


def receipts_expected(message: MessageRecord, participants: Iterable[ParticipantRecord]) -> bool:
    """Twilio keeps receipts only for recipients reached through a binding (SMS, WhatsApp...): Twilio's summary
    counts some (a removed participant's among them), or a current recipient has a binding."""
    delivery = message.delivery or {}
    return bool(delivery.get("total")) or has_receipt_recipients(message, participants)


def removed_participant(source: MessageRecord | ReceiptRecord, participant_sid: str) -> ParticipantRecord:
    """What is known of a participant Twilio no longer lists: its SID, from the receipt it left behind."""
    return ParticipantRecord(
        sid=participant_sid,
        conversation_sid=source.conversation_sid,
        account_sid=source.account_sid,
        chat_service_sid=source.chat_service_sid,
    )


def recipient_status(receipt: ReceiptRecord | None, channel: Channel) -> RecipientStatus:
    """A non-chat recipient's state from its receipt: PENDING without a receipt or with a status that says
    nothing of delivery yet (null, queued, unknown); SMS never beyond DELIVERED (SMS has no read receipts)."""
    status = receipt.status if receipt is not None else None
    if status is None or status is DeliveryStatus.QUEUED:
        return RecipientStatus.PENDING
    out = RecipientStatus(status.value)
    if channel is Channel.SMS and out is RecipientStatus.READ:
        return RecipientStatus.DELIVERED
    return out


def recipient_state(
    message: MessageRecord,
    participant: ParticipantRecord,
    receipt: ReceiptRecord | None,
    *,
    removed: bool = False,
) -> RecipientState:
    channel = receipt_channel(receipt, None) if removed and receipt else participant_channel(participant)
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
    if receipt is None:
        return RecipientState(participant, channel, RecipientStatus.PENDING, RecipientSource.NONE)
    return RecipientState(
        participant,
        channel,
        recipient_status(receipt, channel),
        RecipientSource.RECEIPT,
        error_code=receipt.error_code,
        updated_at=receipt.date_updated or receipt.date_created,
        receipt=receipt,
        removed=removed,
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
    """Every recipient's state for the message: current participants in participant order (those present at its
    creation, or holding a receipt for it), then removed participants that hold a receipt, in receipt order."""
    by_participant = latest_receipt_by_participant(receipts)
    current = {p.sid for p in participants}
    states = [
        recipient_state(message, p, by_participant.get(p.sid))
        for p in participants
        if not is_author(p, message) and (p.sid in by_participant or was_present(p, message))
    ]
    states.extend(
        recipient_state(message, removed_participant(message, sid), receipt, removed=True)
        for sid, receipt in by_participant.items()
        if sid not in current
    )
    return states
