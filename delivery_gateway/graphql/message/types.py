"""GraphQL types of messages: Message (a relay node), its media, and MessageConnection.

Declarative: every field with logic delegates to resolvers (message/, delivery/, participant/); never calls
upstream, a loader or the ledger directly. The delivery fields (author, receipts, recipients, ticks) are plain
attributes: values a page loaded in one step, or deferred loads (graphql/values.py) for a message read alone. On a
cold page, a message whose Receipts list is still on its way from Twilio is served as an awaitable for its Message,
built when that list arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.delivery.ticks import TICKS_RULE, Ticks
from delivery_gateway.graphql.delivery import resolvers as delivery
from delivery_gateway.graphql.delivery.resolvers import MessageDelivery, PendingDelivery
from delivery_gateway.graphql.delivery.types import DeliveryReceipt, DeliverySummary, ParticipantTypes, Recipient
from delivery_gateway.graphql.message import resolvers
from delivery_gateway.graphql.nodes import json_value, node_id, parse_node_id
from delivery_gateway.graphql.participant.resolvers import author_of, participants_of
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.graphql.selection import selected
from delivery_gateway.graphql.values import Deferred, attribute
from delivery_gateway.kernel.frozen import FrozenList
from delivery_gateway.kernel.memo import IdentityMemo
from delivery_gateway.kernel.records import MessageRecord, ReceiptRecord

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


# Message fields a page loads in one step: those needing each message's Receipts list, and all that need the
# conversation's participants (those plus the author).
RECEIPT_FIELDS = frozenset({"receipts", "recipients", "ticks"})
MESSAGE_DELIVERY_FIELDS = RECEIPT_FIELDS | {"participant"}


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
    delivery: DeliverySummary | None = strawberry.field(
        description="The delivery summary (Twilio's, kept current from delivery webhooks: see DeliverySummary); "
        "null when the message has no receipts (chat-only)."
    )
    participant: Participant | None = strawberry.field(
        description="The author, as a participant (null for messages sent by the API as 'system')."
    )
    receipts: list[DeliveryReceipt] | None = strawberry.field(
        description="Twilio's receipts (non-chat recipients only); no upstream call for chat-only."
    )
    recipients: list[Recipient] | None = strawberry.field(
        description="One entry per participant the message was sent to (present when it was created, or holding "
        "a receipt for it; never its author): receipts for SMS/WhatsApp, the read horizon (READ or DELIVERED) for "
        "chat participants."
    )
    ticks: Ticks | None = strawberry.field(description="What a chat UI draws for this message. " + TICKS_RULE)
    record: strawberry.Private[MessageRecord]
    service_scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Message]:
        async def one(value: str) -> Message:
            requested, (conversation_sid, sid) = parse_node_id(value, 2)
            scope, record = await resolvers.message(
                info.context, requested, conversation_sid, sid, arguments=("id", "id", "id")
            )
            return cls.from_record(record, scope, info.context)

        return list(await asyncio.gather(*(one(n) for n in node_ids)))

    @classmethod
    def from_record(
        cls,
        record: MessageRecord,
        service_scope: str | None,
        context: RequestContext,
        loaded: MessageDelivery | None = None,
        participants: ParticipantTypes | None = None,
    ) -> Message:
        """The GraphQL Message of a record read through `service_scope` (None: the default service).

        With `loaded` (what `delivery.deliveries_as_loaded` loaded for its page) and `participants` (the page's shared
        Participant objects), every delivery field is a plain value, or that field's own error; whatever was not
        loaded (or every field, without `loaded`) loads through the request's loaders when, and only if, read.
        """
        scope = service_scope
        author: Any
        receipts: Any
        recipients: Any
        ticks: Any
        if loaded is not None:
            if participants is None and not isinstance(loaded.participants, Exception):
                participants = ParticipantTypes(loaded.participants, scope)
            author = _value(loaded.author, participants.get if participants else None)
        else:
            author = Deferred(lambda: _author(context, scope, record))
        if loaded is not None and loaded.receipts is not None:
            receipts, recipients, ticks = _delivery_fields(loaded, scope, context, participants)
        else:
            receipts = Deferred(lambda: _receipts(context, scope, record))
            recipients = Deferred(lambda: _recipients(context, scope, record))
            ticks = Deferred(lambda: delivery.ticks_of(context, scope, record))
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
            delivery=DeliverySummary.from_twilio(record.delivery),
            participant=attribute(author),
            receipts=attribute(receipts),
            recipients=attribute(recipients),
            ticks=attribute(ticks),
            record=record,
            service_scope=service_scope,
        )

    @classmethod
    def page(
        cls,
        records: Sequence[MessageRecord],
        service_scope: str | None,
        context: RequestContext,
        loaded: Sequence[MessageDelivery | PendingDelivery] | None,
    ) -> list[Message]:
        """Messages of one conversation, sharing one Participant object per participant. A page built wholly from
        the resource cache's shared values is the same read-only list (a FrozenList) for every request."""
        if not loaded:
            return [cls.from_record(r, service_scope, context) for r in records]
        whole = all([d.shared for d in loaded])
        if whole and (built := _PAGES.get(service_scope, *records, *loaded)) is not None:
            return built  # the page's Messages, built once from these shared values (one lookup), read-only
        participants = loaded[0].participants
        shared = None if isinstance(participants, Exception) else ParticipantTypes(participants, service_scope)
        out = []
        for record, loaded_delivery in zip(records, loaded, strict=True):
            if isinstance(loaded_delivery, PendingDelivery):  # its Receipts list is on its way (cold read)
                late: Any = _LateMessage(record, service_scope, context, loaded_delivery, shared)
                out.append(late)  # graphql-core awaits it as the edge's node
                continue
            sources = _shared_sources(record, loaded_delivery)
            message = _BUILT.get(service_scope, *sources) if sources else None
            if message is None:
                message = cls.from_record(record, service_scope, context, loaded_delivery, shared)
                if sources:
                    _BUILT.put(service_scope, sources, _read_only(message))
            out.append(message)
        if whole:
            return _PAGES.put(service_scope, (*records, *loaded), FrozenList(out))
        return out

    @classmethod
    async def page_of(
        cls, info: Info, records: Sequence[MessageRecord], service_scope: str | None, conversation_sid: str
    ) -> list[Message]:
        """The Messages of a connection's page (`edges.node` below the current field), with what the selection
        reads of their delivery loaded in one step (`delivery.deliveries_as_loaded`): no resolver, no task per field.
        On a cold read, a message whose Receipts list is on its way is an awaitable for its Message (`_LateMessage`),
        completed as that list arrives."""
        wanted = selected(info, ("edges", "node"))
        receipts = not wanted.isdisjoint(RECEIPT_FIELDS)
        loaded = None
        if records and not wanted.isdisjoint(MESSAGE_DELIVERY_FIELDS):
            loaded = await delivery.deliveries_as_loaded(
                info.context, service_scope, conversation_sid, records, receipts=receipts
            )
        return cls.page(records, service_scope, info.context, loaded)

    @strawberry.field(description="The messages this one was resent as (resendMessage), oldest first.")
    async def resent_as(self, info: Info) -> list[Message] | None:
        records = await resolvers.resent_as(info.context, self.service_scope, self.record)
        return [Message.from_record(r, self.service_scope, info.context) for r in records]

    @strawberry.field(description="The message this one resends, if it is a resend.")
    async def resend_of(self, info: Info) -> Message | None:
        record = await resolvers.resend_of(info.context, self.service_scope, self.record)
        return Message.from_record(record, self.service_scope, info.context) if record else None


# A page's Messages built from the resource cache's shared immutable values (the message record, and its delivery
# derived once from the participants list and its receipts list: graphql/delivery/resolvers.py) are the same
# for every request that reads those entries, caller included (access is decided before a page is read), so they
# are built once (kernel/memo.py). Everything else is built per request and never kept.
_BUILT: IdentityMemo[Message] = IdentityMemo(8192)
# Whole pages, one lookup instead of one per message; served read-only, so a caller can tell a shared page.
_PAGES: IdentityMemo[list[Message]] = IdentityMemo(1024)


def _shared_sources(record: MessageRecord, delivery: MessageDelivery) -> tuple[object, ...] | None:
    """What a Message built from `delivery` is derived from, when all of it is shared and immutable (the record,
    and a delivery derived from the cache's shared entries alone, every field loaded); else None."""
    return (record, delivery) if delivery.shared else None


def _read_only(message: Message) -> Message:
    """A Message about to be shared: its lists read-only (graphql-core only reads them)."""
    for name in ("media", "receipts", "recipients"):
        value = getattr(message, name)
        if isinstance(value, list):
            setattr(message, name, FrozenList(value))
    return message


def _value(value: Any, build: Any) -> Any:
    """A loaded value, an exception kept as is, or the value passed through `build`."""
    if isinstance(value, Exception) or value is None or build is None:
        return value
    return build(value)


def _delivery_fields(
    loaded: MessageDelivery, scope: str | None, context: RequestContext, participants: ParticipantTypes | None
) -> tuple[Any, Any, Any]:
    """(receipts, recipients, ticks) of a loaded delivery: each a value, or that field's error."""
    built = _receipt_types(loaded.receipts, scope, context, participants)  # type: ignore[arg-type]  # not None here
    receipts = built if isinstance(built, Exception) else list(built.values())
    return receipts, _recipient_types(loaded.states, participants, built), loaded.ticks


class _LateMessage:
    """A page's message whose Receipts list is on its way from Twilio (a cold read): awaitable, as `edges.node`, for
    the Message built once the list has arrived, so graphql-core completes each message as its own list arrives
    instead of the whole page after the slowest list; the page's other messages are plain values. One awaitable per
    message (graphql-core then waits on the page's edges together: one task each, cold reads only)."""

    __slots__ = ("context", "participants", "pending", "record", "scope")

    def __init__(
        self,
        record: MessageRecord,
        scope: str | None,
        context: RequestContext,
        pending: PendingDelivery,
        participants: ParticipantTypes | None,
    ) -> None:
        self.record = record
        self.scope = scope
        self.context = context
        self.pending = pending
        self.participants = participants

    def __await__(self) -> Generator[Any, None, Message]:
        loaded = yield from self.pending.__await__()
        return Message.from_record(self.record, self.scope, self.context, loaded, self.participants)


def _receipt_types(
    records: list[ReceiptRecord] | Exception,
    scope: str | None,
    context: RequestContext,
    participants: ParticipantTypes | None,
) -> dict[str, DeliveryReceipt] | Exception:
    if isinstance(records, Exception):
        return records
    return {r.sid: DeliveryReceipt.from_record(r, scope, context, participants) for r in records}


def _recipient_types(
    states: list[RecipientState] | Exception | None,
    participants: ParticipantTypes | None,
    receipts: dict[str, DeliveryReceipt] | Exception,
) -> list[Recipient] | Exception | None:
    if isinstance(states, Exception) or states is None:
        return states
    if isinstance(receipts, Exception) or participants is None:  # not reached: states come with both
        return RuntimeError("recipient states without their receipts or participants")
    return [Recipient.from_state(s, participants, receipts) for s in states]


async def _author(context: RequestContext, scope: str | None, record: MessageRecord) -> Participant | None:
    found = await author_of(context, scope, record)
    return Participant.from_record(found, scope) if found else None


async def _receipts(context: RequestContext, scope: str | None, record: MessageRecord) -> list[DeliveryReceipt]:
    records = await delivery.receipts_of(context, scope, record)
    participants = ParticipantTypes(await participants_of(context, scope, record.conversation_sid), scope)
    return [DeliveryReceipt.from_record(r, scope, context, participants) for r in records]


async def _recipients(context: RequestContext, scope: str | None, record: MessageRecord) -> list[Recipient]:
    (loaded,) = await delivery.deliveries_of(context, scope, record.conversation_sid, [record])
    built = Message.from_record(record, scope, context, loaded)
    if isinstance(built.recipients, Exception):
        raise built.recipients
    return built.recipients or []


@strawberry.type(
    description="Messages oldest first. Cursors carry Twilio's page token and the message index: `last: 50` "
    "is "
    "the latest page of a chat, `last/before` scrolls back, `first/after` reads forward."
)
class MessageConnection(relay.Connection[Message]):
    pass
