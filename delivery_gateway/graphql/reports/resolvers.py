"""Report field logic: who may ask (access.py), what a valid window and page are, and the ledger's answers.

Never asks the ledger before the caller is authorized and the arguments are valid (BAD_USER_INPUT names the
argument), and never calls upstream itself: the fields below a failed message read through the other domains.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from delivery_gateway.graphql.access import authorize_service_wide
from delivery_gateway.graphql.conversation import resolvers as conversations
from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.graphql.message import resolvers as messages
from delivery_gateway.graphql.paging import decode_cursor, encode_cursor
from delivery_gateway.graphql.participant.resolvers import participant_by_sid
from delivery_gateway.kernel.records import ConversationRecord, MessageRecord, ParticipantRecord
from delivery_gateway.ledger import FailedDeliveryPage, InvalidCursor, ReportDimension, ReportRow
from delivery_gateway.upstream.errors import UpstreamNotFound

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext

# A window may start this much before the retention horizon: "the last 30 days" computed by a client a moment
# before the gateway does is still within a 30-day retention.
HORIZON_LEEWAY = timedelta(minutes=5)
_CURSOR_PREFIX = "failed1"


@dataclass(frozen=True)
class Report:
    service_sid: str
    since: datetime
    until: datetime
    group_by: list[ReportDimension]
    rows: list[ReportRow]

    @property
    def total(self) -> int:
        return sum(row.count for row in self.rows)


def retention_horizon(context: RequestContext, now: datetime | None = None) -> datetime:
    """The earliest moment the ledger still answers for: its history and counts are pruned after this many days."""
    return (now or datetime.now(UTC)) - timedelta(days=context.settings.ledger_retention_days)


def check_window(context: RequestContext, since: datetime, until: datetime) -> None:
    """BAD_USER_INPUT unless both carry a time zone, since < until, and since is within the ledger's retention."""
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise BadUserInput(f"{name}: a time zone is required (e.g. 2026-01-31T00:00:00Z)", argument=name)
    if until <= since:
        raise BadUserInput("until: must be later than since", argument="until")
    horizon = retention_horizon(context)
    if since < horizon - HORIZON_LEEWAY:
        days = context.settings.ledger_retention_days
        raise BadUserInput(
            f"since: the ledger keeps {days} days of delivery history; since must be at or after "
            f"{horizon.replace(microsecond=0).isoformat()} (the retention horizon)",
            argument="since",
        )


async def delivery_report(
    context: RequestContext,
    service_sid: str | None,
    since: datetime,
    until: datetime,
    group_by: Sequence[ReportDimension],
) -> Report:
    """How many times receipts of the service reached each status in [since, until), grouped (see the ledger's
    `delivery_report`): one ledger query, no upstream call (but the default service's SID, cached)."""
    ledger_service = await authorize_service_wide(context, service_sid)
    check_window(context, since, until)
    dims = list(dict.fromkeys(group_by))
    rows = await context.services.ledger.delivery_report(ledger_service, since, until, dims)
    return Report(service_sid=ledger_service, since=since, until=until, group_by=dims, rows=rows)


def encode_failed_cursor(ledger_cursor: str) -> str:
    return encode_cursor(_CURSOR_PREFIX, ledger_cursor)


async def failed_messages(
    context: RequestContext,
    service_sid: str | None,
    since: datetime,
    until: datetime,
    *,
    error_codes: Collection[int] | None,
    retryable: bool | None,
    first: int | None,
    after: str | None,
) -> FailedDeliveryPage:
    """One page of the service's recipients whose receipt ended failed/undelivered in [since, until), newest
    first (the ledger's `failed_deliveries`): one ledger query, no upstream call."""
    ledger_service = await authorize_service_wide(context, service_sid)
    check_window(context, since, until)
    context.page_sizes.check("first", first)
    if error_codes is not None and not error_codes:
        raise BadUserInput(
            "errorCodes: give at least one code, or leave the argument out for every code", argument="errorCodes"
        )
    ledger_after = None
    if after is not None:
        (ledger_after,) = decode_cursor("after", after, _CURSOR_PREFIX, 1, "failedMessages")
    try:
        return await context.services.ledger.failed_deliveries(
            ledger_service,
            since,
            until,
            error_codes=error_codes,
            retryable=retryable,
            first=context.page_sizes.default if first is None else first,
            after=ledger_after,
        )
    except InvalidCursor:
        raise BadUserInput("after: not a failedMessages cursor of this API", argument="after") from None


async def failed_conversation(
    context: RequestContext, service_scope: str | None, conversation_sid: str
) -> ConversationRecord | None:
    """The conversation of a failed message as Twilio has it now; None once Twilio no longer has it."""
    try:
        _, record = await conversations.conversation(context, service_scope, conversation_sid)
    except UpstreamNotFound:
        return None
    return record


async def failed_message(
    context: RequestContext, service_scope: str | None, conversation_sid: str, message_sid: str
) -> MessageRecord | None:
    """The failed message as Twilio has it now; None once Twilio no longer has it."""
    try:
        _, message = await messages.message(context, service_scope, conversation_sid, message_sid)
    except UpstreamNotFound:
        return None
    return message


async def failed_recipient(
    context: RequestContext, service_scope: str | None, conversation_sid: str, participant_sid: str | None
) -> ParticipantRecord | None:
    """The participant the receipt was for; None once it left the conversation (or the conversation is gone)."""
    try:
        return await participant_by_sid(context, service_scope, conversation_sid, participant_sid)
    except UpstreamNotFound:
        return None
