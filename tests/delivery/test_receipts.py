"""The receipt merge: any arrival order of a receipt's statuses ends in the same record, and a stale status
still teaches the record identity fields it lacked.

Pure; every ledger backend applies webhooks through this function (tests/ledger/test_parity.py checks them).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from delivery_gateway.delivery.receipts import merge_receipt, status_key
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.records import ReceiptRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONV, MSG, RECEIPT = "CH" + "1" * 32, "IM" + "1" * 32, "DY" + "1" * 32


def reported(status: S, seconds: int, **fields: object) -> ReceiptRecord:
    return ReceiptRecord.from_dict(
        {
            "sid": RECEIPT,
            "conversation_sid": CONV,
            "message_sid": MSG,
            "status": status.value,
            "date_created": T0.isoformat(),
            "date_updated": (T0 + timedelta(seconds=seconds)).isoformat(),
            **fields,
        }
    )


def test_status_key_orders_by_rank_then_time_then_name() -> None:
    assert status_key(None, None) < status_key(S.SENT, "2026") < status_key(S.DELIVERED, "2025")
    assert status_key(S.READ, "2030") < status_key(S.UNDELIVERED, "2020") < status_key(S.FAILED, "2021")
    assert status_key(S.UNDELIVERED, "2021") > status_key(S.FAILED, "2021")  # same rank and time: by name


def test_first_status_is_taken_as_reported() -> None:
    merge = merge_receipt(None, reported(S.SENT, 1))
    assert merge.status_changed and merge.changed and merge.receipt == reported(S.SENT, 1)


def test_a_later_status_wins_and_an_older_one_changes_nothing() -> None:
    delivered = merge_receipt(None, reported(S.DELIVERED, 2)).receipt
    newer = merge_receipt(delivered, reported(S.READ, 3))
    assert newer.status_changed and newer.receipt.status is S.READ
    stale = merge_receipt(newer.receipt, reported(S.SENT, 1))
    assert not stale.status_changed and not stale.changed and stale.receipt == newer.receipt


def test_a_stale_status_fills_in_identity_fields_but_keeps_the_state() -> None:
    read = merge_receipt(None, reported(S.READ, 3)).receipt
    assert read.participant_sid is None
    stale = merge_receipt(read, reported(S.SENT, 1, participant_sid="MB" + "2" * 32, channel_message_sid="SMx"))
    assert not stale.status_changed and stale.changed
    assert (stale.receipt.participant_sid, stale.receipt.channel_message_sid) == ("MB" + "2" * 32, "SMx")
    assert (stale.receipt.status, stale.receipt.date_updated) == (S.READ, read.date_updated)


def test_identity_fields_already_known_are_kept() -> None:
    first = merge_receipt(None, reported(S.SENT, 1, participant_sid="MB" + "2" * 32)).receipt
    later = merge_receipt(first, reported(S.DELIVERED, 2, participant_sid="MB" + "3" * 32)).receipt
    assert later.participant_sid == "MB" + "2" * 32 and later.status is S.DELIVERED


@pytest.mark.parametrize(
    "statuses",
    [
        [(S.SENT, 1), (S.DELIVERED, 2), (S.READ, 3)],
        [(S.SENT, 1), (S.UNDELIVERED, 4), (S.DELIVERED, 2)],
        [(S.SENT, 1), (S.FAILED, 5), (S.UNDELIVERED, 5)],
    ],
)
def test_every_arrival_order_ends_in_the_same_record(statuses: list[tuple[S, int]]) -> None:
    outcomes = set()
    for order in itertools.permutations(statuses):
        events = [reported(status, seconds, channel_message_sid=f"SM{seconds}") for status, seconds in order]
        first = merge_receipt(None, events[0]).receipt
        final = reduce(lambda record, event: merge_receipt(record, event).receipt, events[1:], first)
        outcomes.add((final.status, final.date_updated))
    assert len(outcomes) == 1
