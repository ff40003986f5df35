"""The kernel's plain values: records survive a JSON round trip unchanged, SIDs are checked before any use.

Pure; no gateway part above the kernel is imported here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord, ParticipantRecord, ReceiptRecord

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def test_records_round_trip_through_json() -> None:
    receipt = ReceiptRecord(
        sid="DY" + "1" * 32,
        conversation_sid="CH" + "1" * 32,
        message_sid="IM" + "1" * 32,
        status=DeliveryStatus.UNDELIVERED,
        error_code=30003,
        date_created=T0,
        date_updated=T0,
    )
    assert ReceiptRecord.from_json(receipt.to_json()) == receipt
    participant = ParticipantRecord(
        sid="MB" + "1" * 32, conversation_sid="CH" + "1" * 32, identity="alice", last_read_timestamp=T0
    )
    assert ParticipantRecord.from_json(participant.to_json()) == participant
    message = MessageRecord(sid="IM" + "1" * 32, conversation_sid="CH" + "1" * 32, index=4, media=[{"sid": "ME1"}])
    assert MessageRecord.from_dict(message.to_dict()) == message


def test_receipt_records_read_twilio_shapes() -> None:
    record = ReceiptRecord.from_dict(
        {
            "sid": "DY1",
            "conversation_sid": "CH1",
            "message_sid": "IM1",
            "status": "read",
            "error_code": 0,
            "date_updated": "2026-01-01T12:30:00Z",
            "unknown_field": "ignored",
        }
    )
    assert record.status is DeliveryStatus.READ and record.error_code is None and record.date_updated == T0


@pytest.mark.parametrize(
    ("value", "prefix", "valid"),
    [
        ("CH" + "a" * 32, "CH", True),
        ("CH" + "a" * 32, "IM", False),
        ("CH" + "A" * 32, "CH", False),
        ("CH" + "a" * 31, None, False),
        ("../" + "a" * 32, None, False),
        (None, None, False),
    ],
)
def test_sid_syntax(value: object, prefix: str | None, valid: bool) -> None:
    assert sids.is_sid(value, prefix) is valid


def test_require_sid_names_the_argument() -> None:
    with pytest.raises(sids.InvalidSid) as info:
        sids.require_sid("conversationSid", "CH123", sids.CONVERSATION)
    assert info.value.argument == "conversationSid" and "CH" in str(info.value)
    assert sids.is_sid(sids.new_sid(sids.RECEIPT), sids.RECEIPT)
