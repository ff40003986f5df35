"""GraphQL types of participants: Participant (a relay node) and the Channel enum.

Declarative: fields with logic delegate to participant/resolvers.py; never calls upstream or a loader directly.
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

from delivery_gateway.delivery import channels
from delivery_gateway.delivery.channels import Channel
from delivery_gateway.graphql.nodes import json_value, node_id, parse_node_id
from delivery_gateway.graphql.participant import resolvers
from delivery_gateway.kernel.records import ParticipantRecord

# GraphQL enums are the delivery rules' own Python enums, registered with a name and a description.
strawberry.enum(
    Channel, name="Channel", description="How a participant is reached: the Conversations SDK (CHAT) or a binding."
)


@strawberry.type(description="A member of a conversation: a chat identity or a messaging binding (SMS, WhatsApp).")
class Participant(relay.Node):
    node_id: relay.NodeID[str]
    sid: str
    conversation_sid: str
    identity: str | None = strawberry.field(description="Chat identity; null for SMS/WhatsApp participants.")
    channel: Channel
    address: str | None = strawberry.field(description="The binding's address (phone number, whatsapp:+...).")
    proxy_address: str | None = strawberry.field(description="The Twilio number the binding talks through.")
    projected_address: str | None = strawberry.field(
        description="A Group MMS participant's projected address (the number the other members see); such a "
        "participant has an identity and counts as CHAT."
    )
    removed: bool = strawberry.field(
        description="True for a participant who has left the conversation: Twilio no longer lists them, and the "
        "gateway knows them only from the delivery receipts they left (SID and channel; no identity or address)."
    )
    last_read_message_index: int | None = strawberry.field(description="Read horizon (chat participants).")
    last_read_at: datetime | None
    attributes: JSON | None
    date_created: datetime | None
    date_updated: datetime | None
    record: strawberry.Private[ParticipantRecord]
    service_scope: strawberry.Private[str | None]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # relay.Node overloads on `required`; one body serves both
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Participant | None]:
        async def one(value: str) -> Participant | None:
            requested, (conversation_sid, sid) = parse_node_id(value, 2)
            scope, record = await resolvers.participant_node(info.context, requested, conversation_sid, sid)
            return cls.from_record(record, scope) if record else None

        return list(await asyncio.gather(*(one(n) for n in node_ids)))

    @classmethod
    def from_record(
        cls,
        record: ParticipantRecord,
        service_scope: str | None,
        *,
        removed: bool = False,
        channel: Channel | None = None,
    ) -> Participant:
        """`removed`: known only from a receipt (then `channel` is the receipt's, as no binding is known)."""
        binding: dict[str, Any] = record.messaging_binding or {}
        return cls(
            node_id=node_id(service_scope, record.conversation_sid, record.sid),
            sid=record.sid,
            conversation_sid=record.conversation_sid,
            identity=record.identity,
            channel=channel or channels.participant_channel(record),
            address=binding.get("address"),
            proxy_address=binding.get("proxy_address"),
            projected_address=channels.projected_address(record),
            removed=removed,
            last_read_message_index=record.last_read_message_index,
            last_read_at=record.last_read_timestamp,
            attributes=json_value(record.attributes),
            date_created=record.date_created,
            date_updated=record.date_updated,
            record=record,
            service_scope=service_scope,
        )
