"""Which channel reaches a participant (the Conversations SDK, SMS, WhatsApp...) and which channel a receipt took.

Pure functions over records; never performs I/O.
"""

from __future__ import annotations

from enum import StrEnum

from delivery_gateway.kernel.records import ParticipantRecord, ReceiptRecord


class Channel(StrEnum):
    CHAT = "chat"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    OTHER = "other"


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
    """The binding's address (phone number, whatsapp:+...); None for chat participants."""
    binding = participant.messaging_binding or {}
    address = binding.get("address")
    return address if isinstance(address, str) else None
