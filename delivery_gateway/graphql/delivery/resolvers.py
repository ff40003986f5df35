"""Delivery field logic: a message's receipts (only when Twilio can hold any), each recipient's state, a
receipt's participant and its ledger history; and all of it for a whole page of messages in one step.

Never calls upstream directly (loaders do) and never fetches receipts for chat-only messages. A page's failure to
load one message's receipts is that message's error alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from delivery_gateway.delivery import recipients as rules
from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.delivery.ticks import Ticks, ticks_for
from delivery_gateway.graphql.participant.resolvers import participants_of
from delivery_gateway.kernel.frozen import FrozenList
from delivery_gateway.kernel.memo import IdentityMemo
from delivery_gateway.kernel.records import MessageRecord, ParticipantRecord, ReceiptRecord
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


@dataclass(frozen=True, slots=True)
class MessageDelivery:
    """A message's delivery state as a page loaded it: each value, or the exception its fields must raise, or
    None where the selection did not ask for it (the field then loads on its own, if read at all)."""

    participants: list[ParticipantRecord] | Exception  # the conversation's, shared by the page
    author: ParticipantRecord | Exception | None
    receipts: list[ReceiptRecord] | Exception | None
    states: list[RecipientState] | Exception | None
    ticks: Ticks | Exception | None


async def deliveries_of(
    context: RequestContext,
    service_scope: str | None,
    conversation_sid: str,
    messages: Sequence[MessageRecord],
    *,
    receipts: bool = True,
) -> list[MessageDelivery]:
    """Every message's author, receipts, recipient states and ticks, for messages of one conversation, in one
    step: the Participants list, then every Receipts list at once (loader-batched and cached, only for messages
    whose recipients can have receipts); the rules come from delivery/. `receipts=False` loads the participants
    alone (a selection that reads only authors).

    A failed Receipts list fails that message's receipts, recipients and ticks only; a failed Participants list
    fails every message's fields that need it, each on its own.
    """
    try:
        participants = await participants_of(context, service_scope, conversation_sid)
    except Exception as exc:
        failed = MessageDelivery(exc, exc, exc, exc, exc) if receipts else MessageDelivery(exc, exc, None, None, None)
        return [failed] * len(messages)
    if not receipts:
        return [MessageDelivery(participants, rules.author_of(m, participants), None, None, None) for m in messages]
    expecting = [m for m in messages if _receipts_expected(m, participants)]
    loader = context.loaders.receipts
    loaded = await _each(loader.load((service_scope, conversation_sid, m.sid)) for m in expecting)
    by_sid: dict[str, list[ReceiptRecord] | BaseException] = {m.sid: r for m, r in zip(expecting, loaded, strict=True)}
    memo = context.loaders.recipient_states
    deliveries = []
    for message in messages:
        found = by_sid.get(message.sid, NO_RECEIPTS)
        if isinstance(found, BaseException):
            if not isinstance(found, Exception):
                raise found  # cancellation: not one message's error
            author = rules.author_of(message, participants)
            deliveries.append(MessageDelivery(participants, author, found, found, found))
            continue
        author, states, ticks = _derived(message, participants, found)
        key = (service_scope, message.sid)
        if memo.setdefault(key, states) is not states:  # computed earlier in this request: that one is served
            states = memo[key]
            ticks = ticks_for(states)
        deliveries.append(MessageDelivery(participants, author, found, states, ticks))
    return deliveries


async def _each(futures: Iterable[Awaitable[list[ReceiptRecord]]]) -> list[list[ReceiptRecord] | BaseException]:
    """Every loader future's value or exception, in order (`gather(..., return_exceptions=True)` without a callback
    per future: the loader resolves the whole batch at once, so only the first await waits)."""
    started = list(futures)  # every load is asked for before the first await, so they form one batch
    out: list[list[ReceiptRecord] | BaseException] = []
    for future in started:
        try:
            out.append(await future)
        except Exception as exc:  # that message's error alone; a cancellation is not one message's
            out.append(exc)
    return out


# A message's author, recipient states and ticks depend on its record, the participants list and its receipts list
# alone; when those are the resource cache's shared immutable values (read-only lists: kernel/frozen.py), they are
# derived once for every request that reads the same entries (kernel/memo.py). Values fresh from Twilio or from
# Redis are new objects on every read: derived per request, never kept.
NO_RECEIPTS: list[ReceiptRecord] = FrozenList()  # a message whose recipients cannot have receipts
_DERIVED: IdentityMemo[tuple[ParticipantRecord | None, list[RecipientState], Ticks]] = IdentityMemo(8192)
_EXPECTED: IdentityMemo[bool] = IdentityMemo(8192)


def _receipts_expected(message: MessageRecord, participants: list[ParticipantRecord]) -> bool:
    if not isinstance(participants, FrozenList):
        return rules.receipts_expected(message, participants)
    found = _EXPECTED.get(None, message, participants)
    if found is None:
        found = _EXPECTED.put(None, (message, participants), rules.receipts_expected(message, participants))
    return found


def _derived(
    message: MessageRecord, participants: list[ParticipantRecord], receipts: list[ReceiptRecord]
) -> tuple[ParticipantRecord | None, list[RecipientState], Ticks]:
    shared = isinstance(participants, FrozenList) and isinstance(receipts, FrozenList)
    if shared and (found := _DERIVED.get(None, message, participants, receipts)) is not None:
        return found
    states = rules.recipient_states(message, participants, receipts)
    derived = (rules.author_of(message, participants), FrozenList(states) if shared else states, ticks_for(states))
    return _DERIVED.put(None, (message, participants, receipts), derived) if shared else derived
