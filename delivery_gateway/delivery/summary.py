"""Twilio's `Message.delivery` summary, recomputed from a message's receipts and what the ledger saw of them.

Pure: never performs I/O. Mirrors Twilio: per status, whether all, some or none of the receipts reached it.
(The emulator keeps its own copy of this rule on purpose: it stands in for Twilio, not for the gateway.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord

STATUSES = ("sent", "delivered", "read", "failed", "undelivered")

# What a status implies the receipt passed through (failed: never sent; undelivered: sent, then refused).
IMPLIED: dict[str, tuple[str, ...]] = {
    "sent": ("sent",),
    "delivered": ("sent", "delivered"),
    "read": ("sent", "delivered", "read"),
    "failed": ("failed",),
    "undelivered": ("sent", "undelivered"),
}


class PastStatus(Protocol):
    """One status a receipt took earlier (a ledger history entry)."""

    @property
    def status(self) -> DeliveryStatus: ...


def _proportion(count: int, total: int) -> str:
    if count == 0:
        return "none"
    return "all" if count == total else "some"


def reached(receipt: ReceiptRecord, history: Sequence[PastStatus] = ()) -> set[str]:
    """Every status the receipt passed through: its history's statuses and what its current status implies."""
    out: set[str] = set()
    statuses: list[DeliveryStatus] = [entry.status for entry in history]
    if receipt.status is not None:
        statuses.append(receipt.status)
    for status in statuses:
        out.update(IMPLIED[DeliveryStatus(status).value])
    return out


def summarize_receipts(
    receipts: Iterable[ReceiptRecord], histories: Mapping[str, Sequence[PastStatus]] | None = None
) -> dict[str, Any] | None:
    """`{"total": n, "sent": "all"|"some"|"none", ...}` in Twilio's shape; None without receipts (as Twilio).

    `histories` maps receipt SIDs to the statuses the ledger recorded for them (oldest first).
    """
    histories = histories or {}
    reached_sets = [reached(r, histories.get(r.sid, ())) for r in receipts]
    if not reached_sets:
        return None
    total = len(reached_sets)
    summary: dict[str, Any] = {"total": total}
    for status in STATUSES:
        summary[status] = _proportion(sum(status in s for s in reached_sets), total)
    return summary


def shows_failure(summary: Mapping[str, Any] | None) -> bool:
    """True when a summary says some receipt failed or was undelivered: the message may be resent."""
    if not summary:
        return False
    return summary.get("failed") in ("all", "some") or summary.get("undelivered") in ("all", "some")
