"""The delivery summary rule: Twilio's all/some/none per status, recomputed from receipts and their history.

Pure; the expected values are worked out by hand from Twilio's description of `Message.delivery`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from delivery_gateway.delivery.summary import current_summary, reached, shows_failure, summarize_receipts
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.records import ReceiptRecord

CONV, MSG = "CH" + "0" * 32, "IM" + "0" * 32


@dataclass(frozen=True)
class Past:
    status: S


def receipt(n: int, status: S | None) -> ReceiptRecord:
    return ReceiptRecord(sid=f"DY{n}", conversation_sid=CONV, message_sid=MSG, status=status)


def test_no_receipts_means_no_summary() -> None:
    assert summarize_receipts([]) is None


@pytest.mark.parametrize(
    ("status", "implied"),
    [
        (S.SENT, {"sent"}),
        (S.DELIVERED, {"sent", "delivered"}),
        (S.READ, {"sent", "delivered", "read"}),
        (S.FAILED, {"failed"}),
        (S.UNDELIVERED, {"sent", "undelivered"}),
    ],
)
def test_a_status_implies_what_the_receipt_passed_through(status: S, implied: set[str]) -> None:
    assert reached(receipt(1, status)) == implied


def test_history_adds_statuses_the_current_one_does_not_imply() -> None:
    # Delivered, then failed (a late carrier report): the summary still counts it as delivered once.
    assert reached(receipt(1, S.FAILED), [Past(S.DELIVERED)]) == {"sent", "delivered", "failed"}


def test_all_some_none_per_status() -> None:
    receipts = [receipt(1, S.READ), receipt(2, S.DELIVERED), receipt(3, S.UNDELIVERED)]
    assert summarize_receipts(receipts) == {
        "total": 3,
        "sent": "all",
        "delivered": "some",
        "read": "some",
        "failed": "none",
        "undelivered": "some",
    }
    assert summarize_receipts(receipts, {"DY3": [Past(S.DELIVERED)]})["delivered"] == "all"


def test_a_receipt_without_status_counts_toward_the_total_only() -> None:
    assert summarize_receipts([receipt(1, None), receipt(2, S.SENT)]) == {
        "total": 2,
        "sent": "some",
        "delivered": "none",
        "read": "none",
        "failed": "none",
        "undelivered": "none",
    }


def test_shows_failure_reads_failed_and_undelivered() -> None:
    assert shows_failure({"failed": "some", "undelivered": "none"})
    assert shows_failure({"failed": "none", "undelivered": "all"})
    assert not shows_failure({"failed": "none", "undelivered": "none", "read": "all"})
    assert not shows_failure(None) and not shows_failure({})


def test_queued_counts_toward_the_total_only() -> None:
    assert reached(receipt(1, S.QUEUED)) == set()
    assert summarize_receipts([receipt(1, S.QUEUED)])["sent"] == "none"


TWILIO = {"total": 2, "sent": "all", "delivered": "none", "read": "none", "failed": "none", "undelivered": "none"}


def test_current_summary_raises_twilios_summary_per_status_and_never_lowers_it() -> None:
    # Twilio said both were sent; the gateway then saw one fail and one delivered, not their earlier `sent`.
    receipts = [receipt(1, S.FAILED), receipt(2, S.DELIVERED)]
    merged = current_summary(TWILIO, receipts)
    assert merged == {**TWILIO, "delivered": "some", "failed": "some"}
    assert current_summary(merged, receipts) == merged  # applying it again changes nothing


def test_current_summary_without_receipts_or_with_a_partial_list_is_twilios() -> None:
    assert current_summary(TWILIO, None) == TWILIO
    assert current_summary(TWILIO, [receipt(1, S.READ)]) == TWILIO  # one of two receipts: says nothing of "all"
    assert current_summary({**TWILIO, "sent": "ALL"}, None)["sent"] == "all"  # one spelling


def test_current_summary_of_more_receipts_than_twilio_counted_is_the_recomputation() -> None:
    three = [receipt(1, S.READ), receipt(2, S.READ), receipt(3, S.SENT)]
    assert current_summary(TWILIO, three) == summarize_receipts(three)
    assert current_summary(None, three) == summarize_receipts(three)
    assert current_summary(None, []) is None
