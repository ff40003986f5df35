"""Root fields of the conversation domain: `Query.conversation` and `Query.conversations`.

Declarative; every root field delegates to conversation/resolvers.py (which validates SIDs and authorizes through
graphql/access.py before any upstream call).
"""

from __future__ import annotations

import strawberry
from strawberry import relay
from strawberry.types import Info

from delivery_gateway.graphql.conversation import resolvers
from delivery_gateway.graphql.conversation.types import Conversation, ConversationConnection, ConversationState
from delivery_gateway.graphql.paging import page_info


@strawberry.type
class ConversationQuery:
    @strawberry.field(description="One conversation; null (with a NOT_FOUND or FORBIDDEN error) when unavailable.")
    async def conversation(self, info: Info, sid: str, service_sid: str | None = None) -> Conversation | None:
        scope, record = await resolvers.conversation(
            info.context, service_sid, sid, arguments=("serviceSid", "sid"), ahead=Conversation.ahead(info)
        )
        return Conversation.from_record(record, scope)

    @strawberry.field(
        description="Conversations of a service in Twilio's order (forward only). Participant callers see "
        "the ones they are in: each scanned conversation costs a Participants list (batched, cached) and at "
        f"most {resolvers.MAX_SCAN_PAGES} "
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
        scope, window = await resolvers.conversation_window(
            info.context, service_sid, first=first, after=after, state=state.value if state else None
        )
        edges = [
            relay.Edge(cursor=cursor.encode(), node=Conversation.from_record(record, scope))
            for record, cursor in window.edges
        ]
        return ConversationConnection(
            edges=edges,
            page_info=page_info(edges, has_next_page=window.has_next_page, has_previous_page=window.has_previous_page),
        )
