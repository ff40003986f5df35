"""The order of a receipt's statuses and which of them end its delivery (terminal) or all change (final).

Pure functions over `DeliveryStatus`; never performs I/O. queued < sent < delivered < read; failed and
undelivered are terminal and outrank everything, so no later webhook can move a receipt back. A status Twilio
has not documented is no `DeliveryStatus` (records.py parses it to None): it ranks with "no status".
"""

from __future__ import annotations

from collections.abc import Iterable

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord

STATUS_RANK: dict[DeliveryStatus, int] = {
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
    DeliveryStatus.UNDELIVERED: 5,
    DeliveryStatus.FAILED: 5,
}


def rank(status: DeliveryStatus | None) -> int:
    """How far a receipt got: 0 without a status, then `STATUS_RANK`."""
    return 0 if status is None else STATUS_RANK[DeliveryStatus(status)]


def is_terminal(status: DeliveryStatus | None) -> bool:
    """Failed and undelivered end a message's delivery: Twilio never retries them."""
    return status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED)


def is_final(status: DeliveryStatus | None) -> bool:
    """No later status can follow (terminal, or read)."""
    return is_terminal(status) or status == DeliveryStatus.READ


def receipts_final(receipts: Iterable[ReceiptRecord]) -> bool:
    """True when no receipt of a message can change any more (all final), so they may be cached for long."""
    items = list(receipts)
    return bool(items) and all(is_final(r.status) for r in items)


def may_still_change(status: DeliveryStatus | str | None, channel: str) -> bool:
    """Whether a receipt in `status` on `channel` (delivery.channels.Channel value) can still take a new status.

    Failed, undelivered and read end a receipt. Delivered ends it on SMS only: WhatsApp (and channels the
    gateway cannot name, which may report reads too) can still move to read. Anything else (sent, queued, no
    status yet, a status Twilio may add later) is on its way: this is what reconciliation keeps re-reading.
    """
    if status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.READ):
        return False
    if status == DeliveryStatus.DELIVERED:
        return channel != "sms"
    return True
