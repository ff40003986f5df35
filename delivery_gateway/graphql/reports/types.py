"""GraphQL types of delivery reports: DeliveryReport and its rows, FailedMessage and its connection.

Declarative: values come from the ledger's answers (ledger/reports.py), errors are explained by the delivery
error table (delivery/error_codes.py); fields that read Twilio delegate to reports/resolvers.py.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.types import Info

from delivery_gateway.delivery.channels import Channel
from delivery_gateway.graphql.conversation.types import Conversation
from delivery_gateway.graphql.delivery.types import DeliveryError
from delivery_gateway.graphql.message.types import Message
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.graphql.reports import resolvers
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import FailedDelivery, ReportDimension, ReportRow

COVERAGE = (
    "Covers what reached the gateway (Twilio's delivery webhooks, and reconciliation against Twilio's REST API) "
    "since the ledger's retention horizon (DELIVERY_GATEWAY_LEDGER_RETENTION_DAYS days back): a status Twilio "
    "never reported to this gateway is not in it."
)

strawberry.enum(
    ReportDimension,
    name="DeliveryReportDimension",
    description="What a delivery report's rows are grouped by: the status reached, its error code, the channel "
    "(SMS, WhatsApp...), the UTC hour or the UTC day it was reached in.",
)


@strawberry.type(description="How many times receipts reached a status, for one combination of the grouped values.")
class DeliveryReportRow:
    count: int
    status: DeliveryStatus | None = strawberry.field(description="Null unless grouped by STATUS.")
    error_code: int | None = strawberry.field(
        description="Null unless grouped by ERROR_CODE, and for statuses reached without an error."
    )
    channel: Channel | None = strawberry.field(description="Null unless grouped by CHANNEL.")
    hour: datetime | None = strawberry.field(description="Start of the UTC hour; null unless grouped by HOUR.")
    day: datetime | None = strawberry.field(description="Start of the UTC day; null unless grouped by DAY.")

    @classmethod
    def from_row(cls, row: ReportRow) -> DeliveryReportRow:
        return cls(
            count=row.count,
            status=row.status,
            error_code=row.error_code,
            channel=Channel(row.channel) if row.channel else None,
            hour=row.hour,
            day=row.day,
        )

    @strawberry.field(description="The error behind `errorCode`: name, description, whether a retry may help.")
    def error(self) -> DeliveryError | None:
        return DeliveryError.from_code(self.error_code)


@strawberry.type(description="Counts of the statuses a service's receipts reached in a time window (deliveryReport).")
class DeliveryReport:
    service_sid: str = strawberry.field(description="The Conversation Service counted (the default one resolved).")
    since: datetime
    until: datetime
    group_by: list[ReportDimension]
    total: int = strawberry.field(description="Every status reached in the window: the sum of the rows' counts.")
    rows: list[DeliveryReportRow] = strawberry.field(
        description="One row per combination of the grouped values with a count above zero, ordered by day, hour, "
        "status, error code, channel; without grouping, one row with the total."
    )

    @classmethod
    def from_report(cls, report: resolvers.Report) -> DeliveryReport:
        return cls(
            service_sid=report.service_sid,
            since=report.since,
            until=report.until,
            group_by=report.group_by,
            total=report.total,
            rows=[DeliveryReportRow.from_row(row) for row in report.rows],
        )


@strawberry.type(description="Who a failed message did not reach: the participant and the channel.")
class FailedRecipient:
    participant_sid: str | None
    channel: Channel
    conversation_sid: strawberry.Private[str]
    service_scope: strawberry.Private[str | None]

    @strawberry.field(description="The participant, as the conversation lists it now; null once it left.")
    async def participant(self, info: Info) -> Participant | None:
        record = await resolvers.failed_recipient(
            info.context, self.service_scope, self.conversation_sid, self.participant_sid
        )
        return Participant.from_record(record, self.service_scope) if record else None


@strawberry.type(
    description="A message whose receipt for one recipient ended failed or undelivered: one per message and recipient."
)
class FailedMessage:
    conversation_sid: str
    message_sid: str
    receipt_sid: str
    status: DeliveryStatus = strawberry.field(description="FAILED or UNDELIVERED: the receipt's current status.")
    error_code: int | None
    failed_at: datetime = strawberry.field(
        description="When Twilio says the receipt failed (when the gateway learnt it, if Twilio gave no time)."
    )
    recipient: FailedRecipient
    service_scope: strawberry.Private[str | None]

    @classmethod
    def from_failure(cls, item: FailedDelivery, service_scope: str | None) -> FailedMessage:
        return cls(
            conversation_sid=item.conversation_sid,
            message_sid=item.message_sid,
            receipt_sid=item.receipt_sid,
            status=item.status,
            error_code=item.error_code,
            failed_at=item.failed_at,
            recipient=FailedRecipient(
                participant_sid=item.participant_sid,
                channel=Channel(item.channel),
                conversation_sid=item.conversation_sid,
                service_scope=service_scope,
            ),
            service_scope=service_scope,
        )

    @strawberry.field(description="The error behind `errorCode`: name, description, whether a retry may help.")
    def error(self) -> DeliveryError | None:
        return DeliveryError.from_code(self.error_code)

    @strawberry.field(description="The conversation, as Twilio has it now; null once Twilio no longer has it.")
    async def conversation(self, info: Info) -> Conversation | None:
        record = await resolvers.failed_conversation(info.context, self.service_scope, self.conversation_sid)
        return Conversation.from_record(record, self.service_scope) if record else None

    @strawberry.field(description="The message, as Twilio has it now; null once Twilio no longer has it.")
    async def message(self, info: Info) -> Message | None:
        record = await resolvers.failed_message(
            info.context, self.service_scope, self.conversation_sid, self.message_sid
        )
        return Message.from_record(record, self.service_scope, info.context) if record else None


@strawberry.type(description="An edge of a FailedMessageConnection.")
class FailedMessageEdge:
    cursor: str = strawberry.field(description="Pass as `after` to read the failures that follow this one.")
    node: FailedMessage


@strawberry.type(
    description="Failed messages newest first (ties by receipt SID), as a Relay connection read forward only. Pages "
    "stay stable while new failures arrive: they land before the first page, never inside later ones."
)
class FailedMessageConnection:
    edges: list[FailedMessageEdge]
    page_info: relay.PageInfo
