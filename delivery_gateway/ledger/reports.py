"""Questions asked of the ledger across conversations: delivery reports and failed deliveries, as SQL.

Never reads more than it answers with: a report sums hourly counts (`ledger_report_hours`) for whole hours and
reads `ledger_history` only for the ragged edges of its window; failed deliveries walk one index, newest first,
keyset-paginated. Statements are built here and run by the SQL ledger (and EXPLAINed by its tests).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select

from delivery_gateway.delivery.error_codes import error_codes
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger.rows import DAY, HOUR
from delivery_gateway.ledger.tables import history, receipts, report_hours

MAX_PAGE = 1000
_STATUS_ORDER = {status: n for n, status in enumerate(DeliveryStatus)}


class ReportDimension(StrEnum):
    """What a delivery report's rows are grouped by (any combination; none: one total)."""

    STATUS = "status"
    ERROR_CODE = "error_code"
    CHANNEL = "channel"
    HOUR = "hour"  # UTC hour the status was reached (Twilio's time)
    DAY = "day"  # UTC day


@dataclass(frozen=True)
class ReportRow:
    """How many times receipts reached a status in the window, for one combination of the grouped dimensions.

    Dimensions not grouped by are None; `error_code` is None also for statuses reached without one.
    """

    count: int
    status: DeliveryStatus | None = None
    error_code: int | None = None
    channel: str | None = None
    hour: datetime | None = None
    day: datetime | None = None


@dataclass(frozen=True)
class FailedDelivery:
    """One recipient of one message whose receipt ended failed or undelivered."""

    cursor: str  # pass as `after` for the next page
    conversation_sid: str
    message_sid: str
    receipt_sid: str
    participant_sid: str | None
    channel: str  # sms, whatsapp, other
    status: DeliveryStatus
    error_code: int | None
    failed_at: datetime  # Twilio's DateUpdated of the failure, else DateCreated, else when the gateway learnt it


@dataclass(frozen=True)
class FailedDeliveryPage:
    items: list[FailedDelivery]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.items[-1].cursor if self.items else None


class InvalidCursor(ValueError):
    """`after` is not a cursor this ledger handed out."""


# --- time windows ---


def epoch_bound(moment: datetime, name: str) -> int:
    """Whole epoch seconds such that `at_epoch >= bound` ⟺ the time is at or after `moment`."""
    if moment.tzinfo is None:
        raise ValueError(f"{name}: a time zone is required (e.g. 2026-01-31T00:00:00Z)")
    return math.ceil(moment.timestamp())


def window(since: datetime, until: datetime) -> tuple[int, int]:
    start, end = epoch_bound(since, "since"), epoch_bound(until, "until")
    if end <= start:
        raise ValueError("until: must be later than since")
    return start, end


def split_window(start: int, end: int) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
    """[start, end) as whole hours (answered from the hourly counts) plus the ragged edges (from history)."""
    first_hour = -(-start // HOUR) * HOUR
    last_hour = end // HOUR * HOUR
    if first_hour >= last_hour:
        return None, [(start, end)]
    edges = [(a, b) for a, b in ((start, first_hour), (last_hour, end)) if a < b]
    return (first_hour, last_hour), edges


# --- delivery report ---


def _dimension_columns(dims: Sequence[ReportDimension], *, hourly: bool) -> list[ColumnElement[Any]]:
    table = report_hours if hourly else history
    hour = report_hours.c.hour if hourly else (history.c.at_epoch // HOUR) * HOUR
    columns = {
        ReportDimension.STATUS: table.c.status,
        ReportDimension.ERROR_CODE: report_hours.c.error_code if hourly else func.coalesce(history.c.error_code, 0),
        ReportDimension.CHANNEL: table.c.channel,
        ReportDimension.HOUR: hour,
        ReportDimension.DAY: (hour // DAY) * DAY,
    }
    return [columns[d].label(d.value) for d in dims]


def report_statements(
    service_sid: str, since: datetime, until: datetime, group_by: Sequence[ReportDimension]
) -> list[Select]:
    """The statements whose rows, summed per group, are the report: whole hours, then each ragged edge."""
    dims = list(dict.fromkeys(ReportDimension(d) for d in group_by))
    interior, edges = split_window(*window(since, until))
    statements = []
    if interior is not None:
        columns = _dimension_columns(dims, hourly=True)
        stmt = select(*columns, func.sum(report_hours.c.count).label("n")).where(
            report_hours.c.service_sid == service_sid,
            report_hours.c.hour >= interior[0],
            report_hours.c.hour < interior[1],
        )
        statements.append(stmt.group_by(*columns) if columns else stmt)
    for start, end in edges:
        columns = _dimension_columns(dims, hourly=False)
        stmt = select(*columns, func.count().label("n")).where(
            history.c.service_sid == service_sid, history.c.at_epoch >= start, history.c.at_epoch < end
        )
        statements.append(stmt.group_by(*columns) if columns else stmt)
    return statements


def merge_report_rows(rows: Sequence[Any], group_by: Sequence[ReportDimension]) -> list[ReportRow]:
    """Sum the statements' rows per group; sorted by day, hour, status (Twilio's order), error code, channel.

    Each row holds the grouped dimensions in `group_by` order, then the count.
    """
    dims = [d.value for d in dict.fromkeys(ReportDimension(d) for d in group_by)]
    width = len(dims)
    totals: dict[tuple, int] = {}
    for row in rows:
        key = tuple(row[:width])
        totals[key] = totals.get(key, 0) + int(row[width] or 0)
    statuses = {s.value: s for s in DeliveryStatus}
    times: dict[int, datetime] = {}

    def moment(epoch: Any) -> datetime:
        epoch = int(epoch)
        if epoch not in times:
            times[epoch] = datetime.fromtimestamp(epoch, UTC)
        return times[epoch]

    convert = {
        "status": lambda v: statuses[v],
        "error_code": lambda v: v or None,
        "channel": lambda v: v,
        "hour": moment,
        "day": moment,
    }
    converters = [convert[d] for d in dims]
    out = [
        ReportRow(count=count, **{d: f(v) for d, f, v in zip(dims, converters, key, strict=True)})
        for key, count in totals.items()
        if count
    ]
    if not dims and not out:
        out.append(ReportRow(count=0))
    epoch = datetime.fromtimestamp(0, UTC)
    out.sort(
        key=lambda r: (
            r.day or epoch,
            r.hour or epoch,
            _STATUS_ORDER[r.status] if r.status else -1,
            r.error_code if r.error_code is not None else -1,
            r.channel or "",
        )
    )
    return out


# --- failed deliveries ---


def encode_cursor(failed_at: int, receipt_sid: str) -> str:
    return f"{failed_at}:{receipt_sid}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    at, sep, sid = cursor.partition(":")
    if not sep or not sid or not at.isdigit():
        raise InvalidCursor("after: not a cursor of failed deliveries (use the `cursor` of a received item)")
    return int(at), sid


def retryable_codes() -> list[int]:
    """Error codes the delivery error table calls retryable (unknown codes are not)."""
    return sorted(code for code, error in error_codes().items() if error.retryable)


def failed_statement(
    service_sid: str,
    since: datetime,
    until: datetime,
    *,
    error_codes: Collection[int] | None = None,
    retryable: bool | None = None,
    first: int = 50,
    after: str | None = None,
) -> Select:
    """Receipts of the service that ended failed/undelivered in [since, until), newest first, `first` + 1 rows
    (the extra one only says whether a next page exists)."""
    if not 0 <= first <= MAX_PAGE:
        raise ValueError(f"first: must be between 0 and {MAX_PAGE}")
    start, end = window(since, until)
    conditions: list[ColumnElement[bool]] = [
        receipts.c.service_sid == service_sid,
        receipts.c.failed_at >= start,
        receipts.c.failed_at < end,
    ]
    if error_codes is not None:
        conditions.append(receipts.c.error_code.in_(sorted({int(c) for c in error_codes})))
    if retryable is not None:
        codes = retryable_codes()
        in_table = receipts.c.error_code.in_(codes)
        conditions.append(in_table if retryable else or_(receipts.c.error_code.is_(None), not_(in_table)))
    if after is not None:
        at, sid = decode_cursor(after)
        conditions.append(receipts.c.failed_at <= at)  # bounds the index range; the OR settles ties
        conditions.append(or_(receipts.c.failed_at < at, and_(receipts.c.failed_at == at, receipts.c.sid < sid)))
    return (
        select(
            receipts.c.sid,
            receipts.c.conversation_sid,
            receipts.c.message_sid,
            receipts.c.participant_sid,
            receipts.c.channel,
            receipts.c.status,
            receipts.c.error_code,
            receipts.c.failed_at,
        )
        .where(*conditions)
        .order_by(receipts.c.failed_at.desc(), receipts.c.sid.desc())
        .limit(first + 1)
    )


def failed_page(rows: Sequence[Any], first: int) -> FailedDeliveryPage:
    items = [
        FailedDelivery(
            cursor=encode_cursor(int(r.failed_at), r.sid),
            conversation_sid=r.conversation_sid,
            message_sid=r.message_sid,
            receipt_sid=r.sid,
            participant_sid=r.participant_sid,
            channel=r.channel,
            status=DeliveryStatus(r.status),
            error_code=r.error_code,
            failed_at=datetime.fromtimestamp(int(r.failed_at), UTC),
        )
        for r in rows[:first]
    ]
    return FailedDeliveryPage(items=items, has_next_page=len(rows) > first)
