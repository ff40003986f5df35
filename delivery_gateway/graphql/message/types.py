"""GraphQL types of messages: Message (a relay node), its media, and MessageConnection.

Declarative: every field with logic delegates to resolvers (message/, delivery/, participant/); never calls
upstream, a loader or the ledger directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery_gateway.delivery.ticks import TICKS_RULE, Ticks
from delivery_gateway.graphql.delivery import resolvers as delivery
from delivery_gateway.graphql.delivery.types import DeliveryReceipt, DeliverySummary, Recipient
from delivery_gateway.graphql.message import resolvers
from delivery_gateway.graphql.nodes import json_value, node_id, parse_node_id
from delivery_gateway.graphql.participant.resolvers import author_of
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.kernel.records import MessageRecord


@strawberry.type(description="A media attachment of a message.")
class MessageMedia:
    sid: str | None
    content_type: str | None
    filename: str | None
    size: int | None

    @classmethod
    def from_twilio(cls, items: list[dict[str, Any]] | None) -> list[MessageMedia] | None:
        if items is None:
            return None
        return [
            cls(sid=m.get("sid"), content_type=m.get("content_type"), filename=m.get("filename"), size=m.get("size"))
            for m in items
        ]


@strawberry.type(description="A message of a conversation, with its delivery state across every recipient.")
class Message(relay.Node):
    node_id: relay.NodeID[str]
    sid: str
    conversation_sid: str
    service_sid: str | None
    index: int
    author: str | None
    participant_sid: str | None
    body: str | None
    media: list[MessageMedia] | None
    attributes: JSON | None
    date_created: datetime | None
    date_updated: datetime | None
    record: strawberry.Private[MessageRecord]
    service_scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Message]:
        async def one(value: str) -> Message:
            requested, (conversation_sid, sid) = parse_node_id(value, 2)
            scope, record = await resolvers.message(
                info.context, requested, conversation_sid, sid, arguments=("id", "id", "id")
            )
            return cls.from_record(record, scope)

        return list(await asyncio.gather(*(one(n) for n in node_ids)))

    @classmethod
    def from_record(cls, record: MessageRecord, service_scope: str | None = None) -> Message:
        """The GraphQL Message of a record read through `service_scope` (None: the default service)."""
        return cls(
            node_id=node_id(service_scope, record.conversation_sid, record.sid),
            sid=record.sid,
            conversation_sid=record.conversation_sid,
            service_sid=record.chat_service_sid or service_scope,
            index=record.index,
            author=record.author,
            participant_sid=record.participant_sid,
            body=record.body,
            media=MessageMedia.from_twilio(record.media),
            attributes=json_value(record.attributes),
            date_created=record.date_created,
            date_updated=record.date_updated,
            record=record,
            service_scope=service_scope,
        )

    @strawberry.field(
        description="The delivery summary (Twilio's, kept current from delivery webhooks: see DeliverySummary); "
        "null when the message has no receipts (chat-only)."
    )
    def delivery(self) -> DeliverySummary | None:
        return DeliverySummary.from_twilio(self.record.delivery)

    @strawberry.field(description="The author, as a participant (null for messages sent by the API as 'system').")
    async def participant(self, info: Info) -> Participant | None:
        record = await author_of(info.context, self.service_scope, self.record)
        return Participant.from_record(record, self.service_scope) if record else None

    @strawberry.field(description="Twilio's receipts (non-chat recipients only); no upstream call for chat-only.")
    async def receipts(self, info: Info) -> list[DeliveryReceipt] | None:
        records = await delivery.receipts_of(info.context, self.service_scope, self.record)
        return [DeliveryReceipt.from_record(r, self.service_scope) for r in records]

    @strawberry.field(
        description="One entry per participant the message was sent to (present when it was created, or holding "
        "a receipt for it; never its author): receipts for SMS/WhatsApp, the read horizon (READ or DELIVERED) for "
        "chat participants."
    )
    async def recipients(self, info: Info) -> list[Recipient] | None:
        states = await delivery.recipient_states_of(info.context, self.service_scope, self.record)
        return [Recipient.from_state(s, self.service_scope) for s in states]

    @strawberry.field(description="What a chat UI draws for this message. " + TICKS_RULE)
    async def ticks(self, info: Info) -> Ticks | None:
        return await delivery.ticks_of(info.context, self.service_scope, self.record)

    @strawberry.field(description="The messages this one was resent as (resendMessage), oldest first.")
    async def resent_as(self, info: Info) -> list[Message] | None:
        records = await resolvers.resent_as(info.context, self.service_scope, self.record)
        return [Message.from_record(r, self.service_scope) for r in records]

    @strawberry.field(description="The message this one resends, if it is a resend.")
    async def resend_of(self, info: Info) -> Message | None:
        record = await resolvers.resend_of(info.context, self.service_scope, self.record)
        return Message.from_record(record, self.service_scope) if record else None


@strawberry.type(
    description="Messages oldest first. Cursors carry Twilio's page token and the message index: `last: 50` "
    "is "
    "the latest page of a chat, `last/before` scrolls back, `first/after` reads forward."
)
class MessageConnection(relay.Connection[Message]):
    pass
