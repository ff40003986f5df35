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
    """CHAT for every SDK participant, else the messaging binding's type.

    Twilio's spec: `identity` is "non-null if (and only if) the participant is using the Conversations SDK".
    A Group MMS participant (spec example `createGmms`) has an identity *and* a binding with only a
    `projected_address`: it reads through the SDK (a read horizon) and gets no delivery receipts.
    """
    if participant.identity:
        return Channel.CHAT
    binding = participant.messaging_binding
    return binding_channel(binding.get("type")) if binding else Channel.OTHER


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
    return _binding_text(participant, "address")


def projected_address(participant: ParticipantRecord) -> str | None:
    """A Group MMS participant's projected address (the number others see); None for everyone else."""
    return _binding_text(participant, "projected_address")


def _binding_text(participant: ParticipantRecord, name: str) -> str | None:
    value = (participant.messaging_binding or {}).get(name)
    return value if isinstance(value, str) else None
