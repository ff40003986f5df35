"""Delivery field logic: a message's receipts (only when Twilio can hold any), each recipient's state, a
receipt's participant and its ledger history; and all of it for a whole page of messages in one step.

Never calls upstream directly (loaders do) and never fetches receipts for chat-only messages. A page's failure to
load one message's receipts is that message's error alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

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
    # Derived from the resource cache's shared immutable entries alone, and the same object for every request that
    # reads them (see `_derived`): what is built from it may be shared too.
    shared: bool = False


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
    shared = isinstance(participants, FrozenList)
    expected = _EXPECTED.get(None, participants, *messages) if shared else None
    if expected is None:
        expected = tuple(rules.receipts_expected(m, participants) for m in messages)
        if shared:
            _EXPECTED.put(None, (participants, *messages), expected)
    expecting = [m for m, e in zip(messages, expected, strict=True) if e]
    loader = context.loaders.receipts
    loaded = await _each(loader.load((service_scope, conversation_sid, m.sid)) for m in expecting)
    by_sid: dict[str, list[ReceiptRecord] | BaseException] = {m.sid: r for m, r in zip(expecting, loaded, strict=True)}
    found = [by_sid.get(m.sid, NO_RECEIPTS) for m in messages]
    page: tuple[MessageDelivery, ...] | None = None
    if shared and all([type(f) is FrozenList for f in found]):  # the page as a whole, derived once (module note)
        page = _PAGES.get(None, participants, *messages, *found)
        if page is None:
            page = tuple(
                _derived(m, participants, cast(list[ReceiptRecord], f)) for m, f in zip(messages, found, strict=True)
            )
            _PAGES.put(None, (participants, *messages, *found), page)
    memo = context.loaders.recipient_states
    deliveries = []
    for i, message in enumerate(messages):
        receipts_found = found[i]
        if isinstance(receipts_found, BaseException):
            if not isinstance(receipts_found, Exception):
                raise receipts_found  # cancellation: not one message's error
            author = rules.author_of(message, participants)
            deliveries.append(MessageDelivery(participants, author, receipts_found, receipts_found, receipts_found))
            continue
        delivery = page[i] if page is not None else _derived(message, participants, receipts_found)
        derived: list[RecipientState] = delivery.states  # type: ignore[assignment]  # a derived delivery has them
        states = memo.setdefault((service_scope, message.sid), derived)
        if states is not derived:  # computed earlier in this request: that one is served
            delivery = MessageDelivery(participants, delivery.author, receipts_found, states, ticks_for(states))
        deliveries.append(delivery)
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
_DERIVED: IdentityMemo[MessageDelivery] = IdentityMemo(8192)
# Per page too (the participants list, every message record, every receipts list): which messages can have receipts,
# and every message's delivery, found in one lookup instead of one per message.
_EXPECTED: IdentityMemo[tuple[bool, ...]] = IdentityMemo(1024)
_PAGES: IdentityMemo[tuple[MessageDelivery, ...]] = IdentityMemo(1024)


def _derived(
    message: MessageRecord, participants: list[ParticipantRecord], receipts: list[ReceiptRecord]
) -> MessageDelivery:
    shared = isinstance(participants, FrozenList) and isinstance(receipts, FrozenList)
    if shared and (found := _DERIVED.get(None, message, participants, receipts)) is not None:
        return found
    states = rules.recipient_states(message, participants, receipts)
    author = rules.author_of(message, participants)
    if not shared:
        return MessageDelivery(participants, author, receipts, states, ticks_for(states))
    delivery = MessageDelivery(participants, author, receipts, FrozenList(states), ticks_for(states), shared=True)
    return _DERIVED.put(None, (message, participants, receipts), delivery)
