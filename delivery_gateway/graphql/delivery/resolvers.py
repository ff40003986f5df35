"""Delivery field logic: a message's receipts (only when Twilio can hold any), each recipient's state, a
receipt's participant and its ledger history.

Never calls upstream directly (loaders do) and never fetches receipts for chat-only messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery_gateway.delivery import recipients as rules
from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.delivery.ticks import Ticks, ticks_for
from delivery_gateway.graphql.participant.resolvers import participants_of
from delivery_gateway.kernel.records import MessageRecord, ReceiptRecord
from delivery_gateway.ledger import HistoryEntry

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


async def receipts_of(
    context: RequestContext, service_scope: str | None, message: MessageRecord
) -> list[ReceiptRecord]:
    """Twilio's receipts of the message; no upstream call when no recipient can have one."""
    participants = await participants_of(context, service_scope, message.conversation_sid)
    if not rules.receipts_expected(message, participants):
        return []
    return await context.loaders.receipts.load((service_scope, message.conversation_sid, message.sid))


async def recipient_states_of(
    context: RequestContext, service_scope: str | None, message: MessageRecord
) -> list[RecipientState]:
    """Every recipient's state, computed once per message with the request's (or event's) loaders."""
    participants = await participants_of(context, service_scope, message.conversation_sid)
    receipts = await receipts_of(context, service_scope, message)
    memo = context.loaders.recipient_states
    key = (service_scope, message.sid)
    states = memo.get(key)
    if states is None:  # no await between this check and the store below, so concurrent resolvers share it
        states = memo[key] = rules.recipient_states(message, participants, receipts)
    return states


async def ticks_of(context: RequestContext, service_scope: str | None, message: MessageRecord) -> Ticks:
    return ticks_for(await recipient_states_of(context, service_scope, message))


async def receipt_history(context: RequestContext, receipt_sid: str) -> list[HistoryEntry]:
    """Every status the ledger recorded for the receipt, oldest first (batched per request or event)."""
    return await context.loaders.receipt_history.load(receipt_sid)
