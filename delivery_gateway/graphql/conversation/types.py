"""GraphQL types of conversations: Conversation (a relay node), ConversationConnection, the inbox roll-up.

Declarative: every field with logic delegates to resolvers (conversation/, message/, participant/); never calls
upstream or a loader directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from delivery_gateway.graphql.conversation import resolvers
from delivery_gateway.graphql.message.paging import MessageWindow
from delivery_gateway.graphql.message.types import MESSAGE_DELIVERY_FIELDS, Message, MessageConnection
from delivery_gateway.graphql.nodes import json_value, node_id, parse_node_id
from delivery_gateway.graphql.paging import page_info
from delivery_gateway.graphql.participant.resolvers import participants_of
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.graphql.selection import below, fields_at
from delivery_gateway.kernel.frozen import FrozenList
from delivery_gateway.kernel.memo import IdentityMemo
from delivery_gateway.kernel.records import ConversationRecord


@strawberry.enum(description="A conversation's state.")
class ConversationState(Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"

    @classmethod
    def from_twilio(cls, value: str | None) -> ConversationState | None:
        try:
            return cls(value) if value else None
        except ValueError:
            return None


@strawberry.type(description="How many of the window's messages are in each tick state.")
class TickCounts:
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int


@strawberry.type(
    description="A chat participant's unread messages: the window's messages after their read horizon (counted, "
    "not an index difference: indices may skip numbers)."
)
class UnreadCount:
    participant: Participant
    count: int | None = strawberry.field(
        description="Messages of the window after the read horizon; null when the participant has no read horizon "
        "(never read anything, or marked everything unread), as Twilio's SDK reports."
    )
    at_least: bool = strawberry.field(
        description="True when the horizon lies before the window and older messages exist: `count` is then a "
        "lower bound (draw it as `count+`)."
    )
    last_read_message_index: int | None


@strawberry.type(description="Inbox roll-up of a conversation's latest messages.")
class ConversationRollup:
    window: int = strawberry.field(description="How many latest messages were examined (the `window` argument).")
    messages: int = strawberry.field(description="Messages actually in the window.")
    last_message_index: int | None
    ticks: TickCounts
    failed: list[Message] = strawberry.field(description="Messages of the window whose ticks are FAILED.")
    unread: list[UnreadCount] = strawberry.field(description="Per chat participant, from the read horizon.")

    @classmethod
    def from_rollup(cls, result: resolvers.Rollup, service_scope: str | None, context: Any) -> ConversationRollup:
        return cls(
            window=result.window,
            messages=result.messages,
            last_message_index=result.last_message_index,
            ticks=TickCounts(**{state.name.lower(): n for state, n in result.ticks.items()}),
            failed=[Message.from_record(m, service_scope, context) for m in result.failed],
            unread=[
                UnreadCount(
                    participant=Participant.from_record(u.participant, service_scope),
                    count=u.count,
                    at_least=u.at_least,
                    last_read_message_index=u.last_read_message_index,
                )
                for u in result.unread
            ],
        )


def _window(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """`messages` arguments as `message_window` takes them (Strawberry gives literals as written: an Int as its
    text); None when one cannot be read, so nothing is started for it and the field reports the mistake."""
    window: dict[str, Any] = {}
    for name in ("first", "last"):
        value = arguments.get(name)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return None
        window[name] = value
    for name in ("after", "before"):
        value = arguments.get(name)
        if value is not None and not isinstance(value, str):
            return None
        window[name] = value
    return window


# The edges of a page whose Messages are shared (Message.page serves them as one read-only list) are the same for
# every request with the same cursors: built once (kernel/memo.py), keyed by the cursors and that list.
_EDGES: IdentityMemo[list[relay.Edge[Message]]] = IdentityMemo(1024)


def _edges(window: MessageWindow, nodes: list[Message]) -> list[relay.Edge[Message]]:
    if not isinstance(nodes, FrozenList):
        return [relay.Edge(cursor=e.cursor.encode(), node=n) for e, n in zip(window.edges, nodes, strict=True)]
    cursors = tuple([(e.cursor.order, e.cursor.token, e.cursor.index) for e in window.edges])
    found = _EDGES.get(cursors, nodes)
    if found is None:
        built = [relay.Edge(cursor=e.cursor.encode(), node=n) for e, n in zip(window.edges, nodes, strict=True)]
        found = _EDGES.put(cursors, (nodes,), FrozenList(built))
    return found


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
    service_scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Conversation]:
        async def one(value: str) -> Conversation:
            requested, (sid,) = parse_node_id(value, 1)
            scope, record = await resolvers.conversation(info.context, requested, sid, arguments=("id", "id"))
            return cls.from_record(record, scope)

        return list(await asyncio.gather(*(one(n) for n in node_ids)))

    @classmethod
    def from_record(cls, record: ConversationRecord, service_scope: str | None = None) -> Conversation:
        return cls(
            node_id=node_id(service_scope, record.sid),
            sid=record.sid,
            service_sid=record.chat_service_sid or service_scope,
            friendly_name=record.friendly_name,
            unique_name=record.unique_name,
            state=ConversationState.from_twilio(record.state),
            attributes=json_value(record.attributes),
            date_created=record.date_created,
            date_updated=record.date_updated,
            record=record,
            service_scope=service_scope,
        )

    @staticmethod
    def ahead(info: Info) -> resolvers.Ahead:
        """What the selection of this conversation reads next (the current field returns a Conversation)."""
        selected = fields_at(info)
        windows = tuple(w for f in selected if f.name == "messages" and (w := _window(f.arguments)) is not None)
        if any(f.name == "rollup" for f in selected):
            windows += ({"last": None},)  # the roll-up's first page is the latest, as for `messages(last: n)`
        nodes = {f.name for f in below((f for f in selected if f.name == "messages"), ("edges", "node"))}
        needs_participants = any(f.name in ("participants", "rollup") for f in selected) or not nodes.isdisjoint(
            MESSAGE_DELIVERY_FIELDS
        )
        return resolvers.Ahead(participants=needs_participants, windows=windows)

    @strawberry.field(description="Every participant (one Participants list per conversation and request).")
    async def participants(self, info: Info) -> list[Participant] | None:
        records = await participants_of(info.context, self.service_scope, self.sid)
        return [Participant.from_record(r, self.service_scope) for r in records]

    @strawberry.field(description="Messages as a Relay connection; see MessageConnection for the cursor design.")
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection | None:
        window = await resolvers.messages(
            info.context, self.service_scope, self.sid, first=first, after=after, last=last, before=before
        )
        nodes = await Message.page_of(info, [e.message for e in window.edges], self.service_scope, self.sid)
        edges = _edges(window, nodes)
        return MessageConnection(
            edges=edges,
            page_info=page_info(edges, has_next_page=window.has_next_page, has_previous_page=window.has_previous_page),
        )

    @strawberry.field(
        description="Inbox roll-up over the latest `window` messages (1-200; default 50 shares the "
        "`messages(last: 50)` page): messages per tick state, the failed ones, unread counts per chat "
        "participant."
    )
    async def rollup(self, info: Info, window: int = 50) -> ConversationRollup | None:
        result = await resolvers.rollup(info.context, self.service_scope, self.sid, window)
        return ConversationRollup.from_rollup(result, self.service_scope, info.context)


@strawberry.type(description="Conversations in Twilio's order; cursors carry Twilio's page token.")
class ConversationConnection(relay.Connection[Conversation]):
    pass
