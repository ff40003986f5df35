"""Root fields of the reports domain: `Query.deliveryReport` and `Query.failedMessages`.

Declarative; both delegate to reports/resolvers.py, which authorizes (API-key callers only) and validates before
the ledger is asked.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.paging import page_info
from delivery_gateway.graphql.reports import resolvers
from delivery_gateway.graphql.reports.types import (
    COVERAGE,
    DeliveryReport,
    FailedMessage,
    FailedMessageConnection,
    FailedMessageEdge,
)
from delivery_gateway.ledger import ReportDimension

_WINDOW = (
    "`since` (inclusive) and `until` (exclusive) need a time zone, since < until, and since no earlier than the "
    "retention horizon; `serviceSid` left out means the account's default service. API-key callers only "
    "(participant callers get FORBIDDEN). "
)


@strawberry.type
class ReportsQuery:
    @strawberry.field(
        description="How many times receipts of a Conversation Service reached each status in a time window, "
        "grouped by any of STATUS, ERROR_CODE, CHANNEL, HOUR, DAY (none: one row with the total), each error "
        "explained. Counts every status a receipt reached once, at the time Twilio says it reached it. "
        + _WINDOW
        + COVERAGE
    )
    async def delivery_report(
        self,
        info: Info,
        since: datetime,
        until: datetime,
        group_by: list[ReportDimension] | None = None,
        service_sid: str | None = None,
    ) -> DeliveryReport | None:
        report = await resolvers.delivery_report(info.context, service_sid, since, until, group_by or [])
        return DeliveryReport.from_report(report)

    @strawberry.field(
        description="Messages of a Conversation Service whose receipt for a recipient ENDED failed or undelivered "
        "(its current status), failing in a time window, newest first: one edge per message and recipient, with "
        "the conversation, the recipient (participant, channel) and the error. `errorCodes`: only these codes; "
        "`retryable`: only errors the error table says a retry may fix (true) or the others (false). "
        + _WINDOW
        + COVERAGE
    )
    async def failed_messages(
        self,
        info: Info,
        since: datetime,
        until: datetime,
        service_sid: str | None = None,
        error_codes: list[int] | None = None,
        retryable: bool | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> FailedMessageConnection | None:
        page = await resolvers.failed_messages(
            info.context,
            service_sid,
            since,
            until,
            error_codes=error_codes,
            retryable=retryable,
            first=first,
            after=after,
        )
        edges = [
            FailedMessageEdge(
                cursor=resolvers.encode_failed_cursor(item.cursor), node=FailedMessage.from_failure(item, service_sid)
            )
            for item in page.items
        ]
        return FailedMessageConnection(
            edges=edges,
            page_info=page_info(edges, has_next_page=page.has_next_page, has_previous_page=after is not None),
        )
