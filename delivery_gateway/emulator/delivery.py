"""Delivery facts of Conversations: statuses, the error codes ending them, and the `Message.delivery` summary.

Pure functions over the store's models; never mutates them and never draws random numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from delivery_gateway.emulator.models import Receipt

SENT = "sent"
DELIVERED = "delivered"
READ = "read"
FAILED = "failed"
UNDELIVERED = "undelivered"
# The five statuses Twilio documents and summarises in `Message.delivery` (seeds 000/001).
STATUSES = (SENT, DELIVERED, READ, FAILED, UNDELIVERED)
# Not among the five, yet possible on the wire: Twilio's receipt resource says the status "can be read, failed,
# delivered, undelivered, sent or null" (seed 002), and `queued` is the status Twilio Messaging gives a message
# before it is sent. The emulator produces them only when their knobs are set (config.py).
QUEUED = "queued"

# Real Twilio error codes per channel. failed: never sent; undelivered: sent, then carrier/WhatsApp gave up.
FAILED_CODES = {"sms": (30008,), "whatsapp": (63016,)}  # 30008 unknown error; 63016 outside the 24h window
UNDELIVERED_CODES = {
    "sms": (30003, 30005, 30006, 30007),  # unreachable handset, unknown destination, landline, filtered
    "whatsapp": (30003, 30008),
}

# What each status implies the receipt has passed through. `failed` means Twilio could not send at all, so it
# implies nothing; `undelivered` is a carrier's verdict on a message that was sent. A receipt's own history
# (Receipt.reached) is the authority: a failed receipt that had been sent first still counts toward `sent`.
# Statuses outside the five (null, queued, anything newer) imply nothing: such a receipt counts toward `total`
# only, the harshest reading of an aggregate Twilio documents for the five statuses alone.
IMPLIED: dict[str, tuple[str, ...]] = {
    SENT: (SENT,),
    DELIVERED: (SENT, DELIVERED),
    READ: (SENT, DELIVERED, READ),
    FAILED: (FAILED,),
    UNDELIVERED: (SENT, UNDELIVERED),
}


def reached_by(status: str | None) -> tuple[str, ...]:
    """The summary statuses a receipt has certainly passed through once it shows `status`."""
    return IMPLIED.get(status, ()) if status is not None else ()


def proportion(count: int, total: int) -> str:
    """Twilio's three-valued summary of `count` out of `total` receipts."""
    if count == 0:
        return "none"
    return "all" if count == total else "some"


def delivery_summary(receipts: Iterable[Receipt]) -> dict[str, object] | None:
    """`Message.delivery`: total receipts and, per status, whether all/some/none of them reached it.

    None when the message has no non-chat recipient (chat participants get no receipts and never count).
    """
    reached = [receipt.reached for receipt in receipts]
    if not reached:
        return None
    total = len(reached)
    summary: dict[str, object] = {"total": total}
    for status in STATUSES:
        summary[status] = proportion(sum(status in statuses for statuses in reached), total)
    return summary
