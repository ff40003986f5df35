"""Message-level field logic: the author participant, receipts (only when Twilio can hold any) and recipients.

Never calls upstream directly (loaders do) and never fetches receipts for chat-only messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery_gateway.delivery import recipients as rules
from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.kernel.records import MessageRecord, ParticipantRecord, ReceiptRecord

if TYPE_CHECKING:
    from delivery_gateway.context import RequestContext


async def participants_of(context: RequestContext, service_sid: str | None, conversation_sid: str):
    """Every participant of the conversation: one Participants list per conversation and request (or none)."""
    return await context.loaders.participants.load((service_sid, conversation_sid))


async def participant_by_sid(
    context: RequestContext, service_sid: str | None, conversation_sid: str, participant_sid: str | None
) -> ParticipantRecord | None:
    if not participant_sid:
        return None
    for participant in await participants_of(context, service_sid, conversation_sid):
        if participant.sid == participant_sid:
            return participant
    return None


async def author_of(context: RequestContext, service_sid: str | None, message: MessageRecord):
    """The author's participant record (by participant SID, else identity/address); None for system sends."""
    return rules.author_of(message, await participants_of(context, service_sid, message.conversation_sid))


async def receipts_of(context: RequestContext, service_sid: str | None, message: MessageRecord) -> list[ReceiptRecord]:
    participants = await participants_of(context, service_sid, message.conversation_sid)
    if not rules.receipts_expected(message, participants):
        return []
    return await context.loaders.receipts.load((service_sid, message.conversation_sid, message.sid))


async def recipients_of(
    context: RequestContext, service_sid: str | None, message: MessageRecord
) -> list[RecipientState]:
    """Every recipient's state, computed once per message and request (`ticks` and `recipients` both need it)."""
    participants = await participants_of(context, service_sid, message.conversation_sid)
    receipts = await receipts_of(context, service_sid, message)
    key = ("recipient_states", service_sid, message.sid)
    states = context.extra.get(key)
    if states is None:  # no await between this check and the store below, so concurrent resolvers share it
        states = context.extra[key] = rules.recipient_states(message, participants, receipts)
    return states
