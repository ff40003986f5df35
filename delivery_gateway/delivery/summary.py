"""`Message.delivery` as the gateway serves it: Twilio's summary, raised by what the gateway knows of the receipts.

Pure: never performs I/O. Mirrors Twilio: per status, whether all, some or none of the receipts reached it.
(The emulator keeps its own copy of this rule on purpose: it stands in for Twilio, not for the gateway.)

One rule (`current_summary`) serves every read, cold (Twilio's summary as fetched) or warm (a cached summary a
webhook has updated): a status a receipt reached is never un-reached, so both Twilio's summary and the
recomputation from receipts (with their ledger history) are lower bounds of the truth, and the summary served is,
per status, the higher of the two. Applying the rule again changes nothing, so a cached summary may be updated
by every webhook and still equal what a fresh read of Twilio shows once Twilio has caught up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord

STATUSES = ("sent", "delivered", "read", "failed", "undelivered")
AMOUNTS = ("none", "some", "all")  # in order: how many of the receipts reached a status

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
    for status in statuses:  # queued (and a status not known here, parsed to None) implies nothing
        out.update(IMPLIED.get(DeliveryStatus(status).value, ()))
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


def _amount_rank(value: Any) -> int:
    text = str(value).lower() if value is not None else "none"
    return AMOUNTS.index(text) if text in AMOUNTS else 0


def current_summary(
    twilio: Mapping[str, Any] | None,
    receipts: Sequence[ReceiptRecord] | None = None,
    histories: Mapping[str, Sequence[PastStatus]] | None = None,
) -> dict[str, Any] | None:
    """The summary served for a message: Twilio's `delivery` and the recomputation from `receipts` (None: not
    known), per status the higher amount (none < some < all).

    The two are merged only when they count the same receipts: a receipts list shorter than Twilio's total is
    partial (Twilio's summary as is); a longer one knows receipts Twilio had not counted yet (the recomputation).
    """
    recomputed = summarize_receipts(receipts, histories) if receipts else None
    if not twilio:
        return recomputed
    base: dict[str, Any] = {"total": int(twilio.get("total") or 0)}
    base.update({status: str(twilio.get(status) or "none").lower() for status in STATUSES})
    if recomputed is None or recomputed["total"] < base["total"]:
        return base
    if recomputed["total"] > base["total"]:
        return recomputed
    return {
        "total": base["total"],
        **{status: max(base[status], recomputed[status], key=_amount_rank) for status in STATUSES},
    }


def shows_failure(summary: Mapping[str, Any] | None) -> bool:
    """True when a summary says some receipt failed or was undelivered: the message may be resent."""
    if not summary:
        return False
    return summary.get("failed") in ("all", "some") or summary.get("undelivered") in ("all", "some")
