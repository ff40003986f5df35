"""Root fields of the message domain: `Query.message`.

Declarative; the field delegates to message/resolvers.py (which validates SIDs and authorizes through
graphql/access.py first).
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.message import resolvers
from delivery_gateway.graphql.message.types import Message


@strawberry.type
class MessageQuery:
    @strawberry.field(description="One message of a conversation; null (with an error) when unavailable.")
    async def message(
        self, info: Info, conversation_sid: str, sid: str, service_sid: str | None = None
    ) -> Message | None:
        scope, record = await resolvers.message(info.context, service_sid, conversation_sid, sid)
        return Message.from_record(record, scope, info.context)
