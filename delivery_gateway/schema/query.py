"""The root Query: one conversation, a page of conversations, one message, and `node(id)` for global IDs.

Declarative; every root field delegates to resolvers/ (they validate SIDs and authorize before any upstream
call).
"""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from delivery_gateway.resolvers import conversations as conversation_resolvers
from delivery_gateway.resolvers.access import effective_service
from delivery_gateway.schema.enums import ConversationState
from delivery_gateway.schema.types import (
    Conversation,
    ConversationConnection,
    Message,
    conversation_from_record,
    message_from_record,
)


@strawberry.type
class Query:
    @strawberry.field(description="Any Conversation, Message or Participant by global ID (same access rules).")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        # A plain field rather than relay.node(): that one's extension mutates the field, so the schema could
        # be built only once per process (tests build several, e.g. with introspection on and off).
        return await id.resolve_node(info)

    @strawberry.field(description="One conversation; null (with a NOT_FOUND or FORBIDDEN error) when unavailable.")
    async def conversation(self, info: Info, sid: str, service_sid: str | None = None) -> Conversation | None:
        scope = effective_service(info.context, service_sid)
        record = await conversation_resolvers.conversation(info.context, scope, sid)
        return conversation_from_record(record, scope)

    @strawberry.field(
        description="Conversations of a service in Twilio's order (forward only). Participant callers see "
        "the ones they are in: each scanned conversation costs a Participants list (batched, cached) and at "
        "most 5 "
        "upstream pages are scanned per request, so a page may come back short with hasNextPage true."
    )
    async def conversations(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        service_sid: str | None = None,
        state: ConversationState | None = None,
    ) -> ConversationConnection | None:
        scope = effective_service(info.context, service_sid)
        window = await conversation_resolvers.conversation_window(
            info.context, scope, first=first, after=after, state=state.value if state else None
        )
        edges = [
            relay.Edge(cursor=cursor.encode(), node=conversation_from_record(record, scope))
            for record, cursor in window.edges
        ]
        return ConversationConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=window.has_next_page,
                has_previous_page=window.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(description="One message of a conversation; null (with an error) when unavailable.")
    async def message(
        self, info: Info, conversation_sid: str, sid: str, service_sid: str | None = None
    ) -> Message | None:
        scope = effective_service(info.context, service_sid)
        record = await conversation_resolvers.message(info.context, scope, conversation_sid, sid)
        return message_from_record(record, scope)
