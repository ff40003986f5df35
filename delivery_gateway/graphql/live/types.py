"""GraphQL types of subscription events: DeliveryUpdate, ReadHorizonUpdate, MessageEvent.

Declarative: each event carries what its ledger change recorded; fields that need more delegate to the
resolvers of their domain.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.delivery.types import DeliveryReceipt
from delivery_gateway.graphql.live.resolvers import message_now
from delivery_gateway.graphql.message import resolvers as messages
from delivery_gateway.graphql.message.types import Message
from delivery_gateway.graphql.participant.resolvers import participant_by_sid
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import LedgerChange


@strawberry.type(description="A receipt changed status. Duplicate and stale webhooks never produce one.")
class DeliveryUpdate:
    cursor: str = strawberry.field(description="Pass as `after` when resubscribing to resume after this event.")
    receipt: DeliveryReceipt
    previous_status: DeliveryStatus | None = strawberry.field(description="Null for a receipt's first status.")
    message_sid: str
    conversation_sid: str
    service_scope: strawberry.Private[str | None]

    @classmethod
    def from_change(cls, change: LedgerChange, service_scope: str | None, context: Any) -> DeliveryUpdate | None:
        """The event of a delivery change (None for a change without a receipt)."""
        receipt = change.receipt
        if receipt is None:
            return None
        return cls(
            cursor=change.cursor,
            receipt=DeliveryReceipt.from_record(receipt, service_scope, context),
            previous_status=change.previous_status,
            message_sid=receipt.message_sid,
            conversation_sid=change.conversation_sid,
            service_scope=service_scope,
        )

    @strawberry.field(description="The message, with its recomputed delivery summary and ticks.")
    async def message(self, info: Info) -> Message | None:
        scope, record = await messages.message(
            info.context, self.service_scope, self.conversation_sid, self.message_sid
        )
        return Message.from_record(record, scope, info.context)


@strawberry.type(description="A participant's read horizon moved forward.")
class ReadHorizonUpdate:
    cursor: str
    conversation_sid: str
    participant_sid: str
    identity: str | None
    last_read_message_index: int
    previous_index: int | None
    service_scope: strawberry.Private[str | None]

    @strawberry.field(description="The participant, as now cached (read horizon included).")
    async def participant(self, info: Info) -> Participant | None:
        record = await participant_by_sid(info.context, self.service_scope, self.conversation_sid, self.participant_sid)
        return Participant.from_record(record, self.service_scope) if record else None


@strawberry.enum(description="What happened to a message.")
class MessageAction(Enum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@strawberry.type(name="MessageEvent", description="A message was added, updated or removed.")
class MessageUpdate:
    cursor: str
    action: MessageAction
    conversation_sid: str
    message_sid: str
    payload: strawberry.Private[dict[str, Any]]
    service_scope: strawberry.Private[str | None]

    @strawberry.field(
        description="The message as a query returns it when the event is sent (as the webhook described it while "
        "Twilio cannot be read); null once removed."
    )
    async def message(self, info: Info) -> Message | None:
        if self.action is MessageAction.REMOVED:
            return None
        record = await message_now(info.context, self.service_scope, self.payload)
        return Message.from_record(record, self.service_scope, info.context)
