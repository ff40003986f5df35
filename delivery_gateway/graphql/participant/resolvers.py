"""Participant field logic: a conversation's participants, one participant by SID, a message's author.

Never calls upstream directly (the participants loader does: one Participants list per conversation and
request, shared with the access check).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery_gateway.delivery import recipients as rules
from delivery_gateway.graphql.access import authorize
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import MessageRecord, ParticipantRecord

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


async def participants_of(
    context: RequestContext, service_scope: str | None, conversation_sid: str
) -> list[ParticipantRecord]:
    """Every participant of the conversation, behind the access rule (every participant lookup and every
    recipient, receipt and author link comes through here)."""
    service_scope = await authorize(context, service_scope, conversation_sid)
    return await context.loaders.participants.load((service_scope, conversation_sid))


async def participant_by_sid(
    context: RequestContext, service_scope: str | None, conversation_sid: str, participant_sid: str | None
) -> ParticipantRecord | None:
    if not participant_sid:
        return None
    for participant in await participants_of(context, service_scope, conversation_sid):
        if participant.sid == participant_sid:
            return participant
    return None


async def author_of(
    context: RequestContext, service_scope: str | None, message: MessageRecord
) -> ParticipantRecord | None:
    """The author's participant record; None for messages the API sent as 'system'."""
    return rules.author_of(message, await participants_of(context, service_scope, message.conversation_sid))


async def participant_node(
    context: RequestContext, service_sid: str | None, conversation_sid: str, sid: str
) -> tuple[str | None, ParticipantRecord | None]:
    """`node(id)` of a Participant: (the service scope read, the participant), authorized like its conversation."""
    sids.require_sid("id", sid, sids.PARTICIPANT)
    scope = await authorize(context, service_sid, conversation_sid, arguments=("id", "id"))
    return scope, await participant_by_sid(context, scope, conversation_sid, sid)
