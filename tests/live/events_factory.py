"""Builders of ledger events and Twilio webhook forms for the live-delivery tests.

Test helpers only: never used by the gateway itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.kernel.sids import new_sid
from delivery_gateway.ledger.events import DeliveryEvent, ReadHorizonEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def delivery(
    conversation: str,
    message: str,
    receipt: str,
    status: str,
    seconds: int,
    *,
    participant: str | None = None,
    error_code: int | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        conversation_sid=conversation,
        message_sid=message,
        receipt_sid=receipt,
        status=DeliveryStatus(status),
        participant_sid=participant,
        error_code=error_code,
        date_created=at(0),
        date_updated=at(seconds),
    )


def horizon(conversation: str, participant: str, index: int) -> ReadHorizonEvent:
    return ReadHorizonEvent(conversation_sid=conversation, participant_sid=participant, last_read_message_index=index)


def sids(prefix: str, n: int) -> list[str]:
    return [new_sid(prefix) for _ in range(n)]
