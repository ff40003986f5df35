"""How one reported status changes a receipt's record: the merge order of statuses and the identity fields.

Pure: never performs I/O. Every ledger backend applies a delivery webhook through `merge_receipt` (the Redis
backend's Lua script mirrors it, and a parity test holds them together), so arrival order never matters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from delivery_gateway.delivery.statuses import rank
from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord

# Fields that name the receipt rather than its state: the first value learnt is kept, from whichever event
# brought it (a late, older status still teaches the ledger a participant SID it did not know).
IDENTITY_FIELDS = ("participant_sid", "account_sid", "chat_service_sid", "channel_message_sid", "date_created")


def status_key(status: DeliveryStatus | str | None, at: str | None) -> tuple[int, str, str]:
    """Total order of a receipt's statuses: rank first; equal ranks broken by time (ISO-8601 text), then name.

    The current status is the maximum of this key over the whole history, so any order of arrival agrees.
    """
    if status is None:
        return (0, "", "")
    status = DeliveryStatus(status)
    return (rank(status), at or "", status.value)


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ReceiptMerge:
    """The receipt after one reported status.

    `status_changed`: the reported status won (a ledger change to record and publish); `changed`: the record
    differs from the previous one at all (a stale status may still have filled in identity fields).
    """

    receipt: ReceiptRecord
    status_changed: bool
    changed: bool


def merge_receipt(previous: ReceiptRecord | None, reported: ReceiptRecord) -> ReceiptMerge:
    """`previous` (None for a receipt never seen) after `reported`, one status as a webhook described it."""
    if previous is None:
        return ReceiptMerge(reported, status_changed=True, changed=True)
    wins = status_key(reported.status, _at(reported.date_updated)) > status_key(
        previous.status, _at(previous.date_updated)
    )
    state = reported if wins else previous
    identity = {
        name: getattr(previous, name) if getattr(previous, name) is not None else getattr(reported, name)
        for name in IDENTITY_FIELDS
    }
    merged = dataclasses.replace(
        reported,
        status=state.status,
        reported_status=state.reported_status,
        error_code=state.error_code,
        date_updated=state.date_updated,
        **identity,
    )
    return ReceiptMerge(merged, status_changed=wins, changed=merged != previous)
