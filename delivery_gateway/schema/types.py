"""GraphQL object types (Conversation, Message, Participant, receipts, rollup) and their record converters.

Declarative: every field with logic delegates to resolvers/; never calls upstream or a loader directly.
Other schema modules (mutations, subscriptions) build types with `message_from_record` and friends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery_gateway.context import RequestContext
from delivery_gateway.delivery.channels import participant_channel, receipt_channel
from delivery_gateway.delivery.error_codes import describe_error_code
from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.delivery.ticks import TICKS_RULE, ticks_for
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import ConversationRecord, MessageRecord, ParticipantRecord, ReceiptRecord
from delivery_gateway.resolvers import conversations as conversation_resolvers
from delivery_gateway.resolvers import messages as message_resolvers
from delivery_gateway.resolvers.access import authorize_conversation
from delivery_gateway.resolvers.errors import BadUserInput
from delivery_gateway.resolvers.paging import message_window

if TYPE_CHECKING:
    from delivery_gateway.schema.subscription import ReceiptStatusChange
from delivery_gateway.schema.enums import (
    Channel,
    ConversationState,
    DeliveryAmount,
    DeliveryStatus,
    RecipientSource,
    RecipientStatus,
    Ticks,
)

_NO_SERVICE = "-"


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _scope_id(service_sid: str | None) -> str:
    return service_sid or _NO_SERVICE


def _parse_node_id(node_id: str, parts: int) -> list[str | None]:
    values = node_id.split("/")
    if len(values) != parts:
        raise BadUserInput("id: not a global ID of this API")
    return [None if v == _NO_SERVICE else v for v in values]


def _context(info: Info) -> RequestContext:
    return info.context


# Delivery ---------------------------------------------------------------------------------------


@strawberry.type(description="A Twilio delivery error code, explained from the gateway's table of Twilio errors.")
class DeliveryError:
    code: int
    name: str
    description: str
    retryable: bool = strawberry.field(description="Whether sending the message again may succeed.")


def delivery_error(code: int | None) -> DeliveryError | None:
    entry = describe_error_code(code)
    if entry is None:
        return None
    return DeliveryError(code=entry.code, name=entry.name, description=entry.description, retryable=entry.retryable)


@strawberry.type(description="Twilio's aggregated delivery summary of a message (`Message.delivery`), as is.")
class DeliverySummary:
    total: int
    sent: DeliveryAmount
    delivered: DeliveryAmount
    read: DeliveryAmount
    failed: DeliveryAmount
    undelivered: DeliveryAmount


def _amount(value: Any) -> DeliveryAmount:
    try:
        return DeliveryAmount(str(value).lower())
    except ValueError:
        return DeliveryAmount.NONE


def delivery_summary(delivery: dict[str, Any] | None) -> DeliverySummary | None:
    if not delivery:
        return None
    return DeliverySummary(
        total=int(delivery.get("total") or 0),
        sent=_amount(delivery.get("sent")),
        delivered=_amount(delivery.get("delivered")),
        read=_amount(delivery.get("read")),
        failed=_amount(delivery.get("failed")),
        undelivered=_amount(delivery.get("undelivered")),
    )


@strawberry.type(description="One Twilio delivery receipt: one message to one non-chat participant.")
class DeliveryReceipt:
    sid: str
    message_sid: str
    conversation_sid: str
    participant_sid: str | None
    status: DeliveryStatus | None
    error_code: int | None = strawberry.field(description="Twilio's error code for failed/undelivered receipts.")
    channel_message_sid: str | None = strawberry.field(description="The SMS/WhatsApp message SID on the channel.")
    date_created: datetime | None
    date_updated: datetime | None
    scope: strawberry.Private[str | None]
    bound_participant: strawberry.Private[ParticipantRecord | None] = None

    @strawberry.field(description="The error behind `errorCode`: name, description, whether a retry may help.")
    def error(self) -> DeliveryError | None:
        return delivery_error(self.error_code)

    @strawberry.field(description="SMS, WHATSAPP... from the participant's binding, else the channel SID prefix.")
    async def channel(self, info: Info) -> Channel:
        participant = self.bound_participant or await message_resolvers.participant_by_sid(
            _context(info), self.scope, self.conversation_sid, self.participant_sid
        )
        record = ReceiptRecord(
            sid=self.sid,
            conversation_sid=self.conversation_sid,
            message_sid=self.message_sid,
            channel_message_sid=self.channel_message_sid,
        )
        return receipt_channel(record, participant)

    @strawberry.field(description="The participant the receipt is for.")
    async def participant(self, info: Info) -> Participant | None:
        record = self.bound_participant or await message_resolvers.participant_by_sid(
            _context(info), self.scope, self.conversation_sid, self.participant_sid
        )
        return participant_from_record(record, self.scope) if record else None

    @strawberry.field(
        description=(
            "Every status change the gateway's delivery ledger recorded for this receipt, oldest first, including"
            " late older statuses that did not change it. Twilio keeps only the latest status: history covers what"
            " reached the gateway's webhook. Null when the gateway runs without a ledger."
        )
    )
    async def history(
        self, info: Info
    ) -> list[Annotated[ReceiptStatusChange, strawberry.lazy("delivery_gateway.schema.subscription")]] | None:
        from delivery_gateway.schema.subscription import receipt_history

        return await receipt_history(info, self.sid)


def receipt_from_record(
    record: ReceiptRecord, service_sid: str | None, participant: ParticipantRecord | None = None
) -> DeliveryReceipt:
    return DeliveryReceipt(
        sid=record.sid,
        message_sid=record.message_sid,
        conversation_sid=record.conversation_sid,
        participant_sid=record.participant_sid,
        status=record.status,
        error_code=record.error_code,
        channel_message_sid=record.channel_message_sid,
        date_created=record.date_created,
        date_updated=record.date_updated,
        scope=service_sid,
        bound_participant=participant,
    )


# Participants -----------------------------------------------------------------------------------


@strawberry.type(description="A member of a conversation: a chat identity or a messaging binding (SMS, WhatsApp).")
class Participant(relay.Node):
    node_id: relay.NodeID[str]
    sid: str
    conversation_sid: str
    identity: str | None = strawberry.field(description="Chat identity; null for SMS/WhatsApp participants.")
    channel: Channel
    address: str | None = strawberry.field(description="The binding's address (phone number, whatsapp:+...).")
    proxy_address: str | None = strawberry.field(description="The Twilio number the binding talks through.")
    last_read_message_index: int | None = strawberry.field(description="Read horizon (chat participants).")
    last_read_at: datetime | None
    attributes: JSON | None
    date_created: datetime | None
    date_updated: datetime | None
    record: strawberry.Private[ParticipantRecord]
    scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        async def one(node_id: str) -> Participant | None:
            service_sid, conversation_sid, sid = _parse_node_id(node_id, 3)
            sids.require_sid("id", sid, sids.PARTICIPANT)
            await authorize_conversation(_context(info), service_sid, conversation_sid)
            record = await message_resolvers.participant_by_sid(_context(info), service_sid, conversation_sid, sid)
            return participant_from_record(record, service_sid) if record else None

        return await asyncio.gather(*(one(n) for n in node_ids))


def participant_from_record(record: ParticipantRecord, service_sid: str | None) -> Participant:
    binding = record.messaging_binding or {}
    return Participant(
        node_id=f"{_scope_id(service_sid)}/{record.conversation_sid}/{record.sid}",
        sid=record.sid,
        conversation_sid=record.conversation_sid,
        identity=record.identity,
        channel=participant_channel(record),
        address=binding.get("address"),
        proxy_address=binding.get("proxy_address"),
        last_read_message_index=record.last_read_message_index,
        last_read_at=record.last_read_timestamp,
        attributes=_json(record.attributes),
        date_created=record.date_created,
        date_updated=record.date_updated,
        record=record,
        scope=service_sid,
    )


# Messages ---------------------------------------------------------------------------------------


@strawberry.type(description="One recipient of a message (every participant but the author), whatever the channel.")
class Recipient:
    participant: Participant
    channel: Channel
    status: RecipientStatus
    source: RecipientSource = strawberry.field(
        description="RECEIPT for SMS/WhatsApp (Twilio receipts), READ_HORIZON for chat participants."
    )
    error_code: int | None
    updated_at: datetime | None
    receipt: DeliveryReceipt | None

    @strawberry.field(description="The error behind `errorCode`.")
    def error(self) -> DeliveryError | None:
        return delivery_error(self.error_code)


def recipient_from_state(state: RecipientState, service_sid: str | None) -> Recipient:
    return Recipient(
        participant=participant_from_record(state.participant, service_sid),
        channel=state.channel,
        status=state.status,
        source=state.source,
        error_code=state.error_code,
        updated_at=state.updated_at,
        receipt=receipt_from_record(state.receipt, service_sid, state.participant) if state.receipt else None,
    )


@strawberry.type(description="A media attachment of a message.")
class MessageMedia:
    sid: str | None
    content_type: str | None
    filename: str | None
    size: int | None


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
    scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        async def one(node_id: str) -> Message:
            service_sid, conversation_sid, sid = _parse_node_id(node_id, 3)
            record = await conversation_resolvers.message(_context(info), service_sid, conversation_sid, sid)
            return message_from_record(record, service_sid)

        return await asyncio.gather(*(one(n) for n in node_ids))

    @strawberry.field(description="Twilio's aggregated delivery summary; null for chat-only messages.")
    def delivery(self) -> DeliverySummary | None:
        return delivery_summary(self.record.delivery)

    @strawberry.field(description="The author, as a participant (null for messages sent by the API as 'system').")
    async def participant(self, info: Info) -> Participant | None:
        record = await message_resolvers.author_of(_context(info), self.scope, self.record)
        return participant_from_record(record, self.scope) if record else None

    @strawberry.field(description="Twilio's receipts (non-chat recipients only); no upstream call for chat-only.")
    async def receipts(self, info: Info) -> list[DeliveryReceipt] | None:
        records = await message_resolvers.receipts_of(_context(info), self.scope, self.record)
        return [receipt_from_record(r, self.scope) for r in records]

    @strawberry.field(
        description="One entry per participant other than the author: receipts for SMS/WhatsApp, the read "
        "horizon (READ or DELIVERED) for chat participants."
    )
    async def recipients(self, info: Info) -> list[Recipient] | None:
        states = await message_resolvers.recipients_of(_context(info), self.scope, self.record)
        return [recipient_from_state(s, self.scope) for s in states]

    @strawberry.field(description="What a chat UI draws for this message. " + TICKS_RULE)
    async def ticks(self, info: Info) -> Ticks | None:
        return ticks_for(await message_resolvers.recipients_of(_context(info), self.scope, self.record))

    @strawberry.field(description="The messages this one was resent as (resendMessage), oldest first.")
    async def resent_as(self, info: Info) -> list[Message] | None:
        from delivery_gateway.schema import mutation  # resend logic lives with the mutation (imports us)

        return await mutation.resent_as(info, self)

    @strawberry.field(description="The message this one resends, if it is a resend.")
    async def resend_of(self, info: Info) -> Message | None:
        from delivery_gateway.schema import mutation

        return await mutation.resend_of(info, self)


def _media(items: list[dict[str, Any]] | None) -> list[MessageMedia] | None:
    if items is None:
        return None
    return [
        MessageMedia(
            sid=m.get("sid"),
            content_type=m.get("content_type"),
            filename=m.get("filename"),
            size=m.get("size"),
        )
        for m in items
    ]


def message_from_record(record: MessageRecord, service_sid: str | None = None) -> Message:
    """The GraphQL Message of a record; `service_sid` is the scope it was read in (None: default service)."""
    return Message(
        node_id=f"{_scope_id(service_sid)}/{record.conversation_sid}/{record.sid}",
        sid=record.sid,
        conversation_sid=record.conversation_sid,
        service_sid=record.chat_service_sid or service_sid,
        index=record.index,
        author=record.author,
        participant_sid=record.participant_sid,
        body=record.body,
        media=_media(record.media),
        attributes=_json(record.attributes),
        date_created=record.date_created,
        date_updated=record.date_updated,
        record=record,
        scope=service_sid,
    )


@strawberry.type(
    description="Messages oldest first. Cursors carry Twilio's page token and the message index: `last: 50` "
    "is "
    "the latest page of a chat, `last/before` scrolls back, `first/after` reads forward."
)
class MessageConnection(relay.Connection[Message]):
    pass


# Conversations ----------------------------------------------------------------------------------


@strawberry.type(description="How many of the window's messages are in each tick state.")
class TickCounts:
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int


@strawberry.type(description="A chat participant's unread messages, from their read horizon (no 1,000 cap).")
class UnreadCount:
    participant: Participant
    count: int
    last_read_message_index: int | None


@strawberry.type(description="Inbox roll-up of a conversation's latest messages.")
class ConversationRollup:
    window: int = strawberry.field(description="How many latest messages were examined (the `window` argument).")
    messages: int = strawberry.field(description="Messages actually in the window.")
    last_message_index: int | None
    ticks: TickCounts
    failed: list[Message] = strawberry.field(description="Messages of the window whose ticks are FAILED.")
    unread: list[UnreadCount] = strawberry.field(description="Per chat participant, from the read horizon.")


@strawberry.type(description="A Twilio conversation.")
class Conversation(relay.Node):
    node_id: relay.NodeID[str]
    sid: str
    service_sid: str | None
    friendly_name: str | None
    unique_name: str | None
    state: ConversationState | None
    attributes: JSON | None
    date_created: datetime | None
    date_updated: datetime | None
    record: strawberry.Private[ConversationRecord]
    scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        async def one(node_id: str) -> Conversation:
            service_sid, sid = _parse_node_id(node_id, 2)
            record = await conversation_resolvers.conversation(_context(info), service_sid, sid)
            return conversation_from_record(record, service_sid)

        return await asyncio.gather(*(one(n) for n in node_ids))

    @strawberry.field(description="Every participant (one Participants list per conversation and request).")
    async def participants(self, info: Info) -> list[Participant] | None:
        records = await message_resolvers.participants_of(_context(info), self.scope, self.sid)
        return [participant_from_record(r, self.scope) for r in records]

    @strawberry.field(description="Messages as a Relay connection; see MessageConnection for the cursor design.")
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection | None:
        window = await message_window(
            _context(info).loaders, self.scope, self.sid, first=first, after=after, last=last, before=before
        )
        edges = [
            relay.Edge(cursor=e.cursor.encode(), node=message_from_record(e.message, self.scope)) for e in window.edges
        ]
        return MessageConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=window.has_next_page,
                has_previous_page=window.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(
        description="Inbox roll-up over the latest `window` messages (1-200; default 50 shares the "
        "`messages(last: 50)` page): messages per tick state, the failed ones, unread counts per chat "
        "participant."
    )
    async def rollup(self, info: Info, window: int = 50) -> ConversationRollup | None:
        result = await conversation_resolvers.rollup(_context(info), self.scope, self.sid, window)
        return ConversationRollup(
            window=result.window,
            messages=result.messages,
            last_message_index=result.last_message_index,
            ticks=TickCounts(**{state.name.lower(): n for state, n in result.ticks.items()}),
            failed=[message_from_record(m, self.scope) for m in result.failed],
            unread=[
                UnreadCount(
                    participant=participant_from_record(u.participant, self.scope),
                    count=u.count,
                    last_read_message_index=u.last_read_message_index,
                )
                for u in result.unread
            ],
        )


def _state(value: str | None) -> ConversationState | None:
    try:
        return ConversationState(value) if value else None
    except ValueError:
        return None


def conversation_from_record(record: ConversationRecord, service_sid: str | None = None) -> Conversation:
    return Conversation(
        node_id=f"{_scope_id(service_sid)}/{record.sid}",
        sid=record.sid,
        service_sid=record.chat_service_sid or service_sid,
        friendly_name=record.friendly_name,
        unique_name=record.unique_name,
        state=_state(record.state),
        attributes=_json(record.attributes),
        date_created=record.date_created,
        date_updated=record.date_updated,
        record=record,
        scope=service_sid,
    )


@strawberry.type(description="Conversations in Twilio's order; cursors carry Twilio's page token.")
class ConversationConnection(relay.Connection[Conversation]):
    pass
