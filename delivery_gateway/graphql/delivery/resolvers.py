"""Delivery field logic: a message's receipts (only when Twilio can hold any), each recipient's state, a
receipt's participant and its ledger history; and all of it for a whole page of messages in one step.

Never calls upstream directly (loaders do) and never fetches receipts for chat-only messages. A page's failure to
load one message's receipts is that message's error alone.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

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


class PendingDelivery:
    """A message's delivery while its Receipts list is still on its way from Twilio (the loader settles each list as
    its own call answers): the author at once, the rest by awaiting it, which gives the `MessageDelivery` (derived
    once, by whichever of the message's fields awaits it first). Exists only on a cold read: a page whose lists
    were all cached has none."""

    __slots__ = ("_build", "_future", "_value", "author", "participants")
    shared = False

    def __init__(
        self,
        participants: list[ParticipantRecord],
        author: ParticipantRecord | None,
        future: asyncio.Future[list[ReceiptRecord]],
        build: Callable[[list[ReceiptRecord] | BaseException], MessageDelivery],
    ) -> None:
        self.participants = participants
        self.author = author
        self._future = future
        self._build = build
        self._value: MessageDelivery | None = None

    def __await__(self) -> Generator[Any, None, MessageDelivery]:
        if self._value is None:
            try:
                receipts: list[ReceiptRecord] | BaseException = yield from self._future.__await__()
            except Exception as exc:  # that message's error alone; a cancellation is not one message's
                receipts = exc
            if self._value is None:
                self._value = self._build(receipts)
        return self._value


async def deliveries_of(
    context: RequestContext,
    service_scope: str | None,
    conversation_sid: str,
    messages: Sequence[MessageRecord],
    *,
    receipts: bool = True,
) -> list[MessageDelivery]:
    """Every message's author, receipts, recipient states and ticks, for messages of one conversation, in one
    step (`deliveries_as_loaded`, every Receipts list awaited)."""
    loaded = await deliveries_as_loaded(context, service_scope, conversation_sid, messages, receipts=receipts)
    return [d if isinstance(d, MessageDelivery) else await d for d in loaded]


async def deliveries_as_loaded(
    context: RequestContext,
    service_scope: str | None,
    conversation_sid: str,
    messages: Sequence[MessageRecord],
    *,
    receipts: bool = True,
) -> list[MessageDelivery | PendingDelivery]:
    """Every message's author, receipts, recipient states and ticks, for messages of one conversation: the
    Participants list, then every Receipts list at once (loader-batched and cached, only for messages whose
    recipients can have receipts); the rules come from delivery/. `receipts=False` loads the participants alone (a
    selection that reads only authors).

    Returns as soon as every list is either known (the resource cache's, or loaded earlier in this request: those
    messages' deliveries are plain values) or requested from Twilio (those messages get a `PendingDelivery`, which
    their fields await, each settling as its own list arrives).

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
    loader = context.loaders.receipts
    load_keys = [(service_scope, conversation_sid, m.sid) for m, e in zip(messages, expected, strict=True) if e]
    # DataLoader.load returns the key's future (asyncio's, as its batch function settles it).
    futures: dict[str, asyncio.Future[list[ReceiptRecord]]] = {key[2]: loader.load(key) for key in load_keys}  # type: ignore[misc]
    if load_keys:
        await loader.looked_up(load_keys)  # each list known, or its call sent (streaming_loader.py)
    found: list[list[ReceiptRecord] | BaseException | asyncio.Future[list[ReceiptRecord]]] = []
    pending = False
    for message in messages:
        future = futures.get(message.sid)
        if future is None:
            found.append(NO_RECEIPTS)
        elif not future.done():
            found.append(future)
            pending = True
        elif future.cancelled():
            raise asyncio.CancelledError  # not one message's error
        else:
            found.append(future.exception() or future.result())
    page: tuple[MessageDelivery, ...] | None = None
    if shared and not pending and all([type(f) is FrozenList for f in found]):  # the page at once (module note)
        page = _PAGES.get(None, participants, *messages, *found)
        if page is None:
            page = tuple(
                _derived(m, participants, cast(list[ReceiptRecord], f)) for m, f in zip(messages, found, strict=True)
            )
            _PAGES.put(None, (participants, *messages, *found), page)
    deliveries: list[MessageDelivery | PendingDelivery] = []
    for i, message in enumerate(messages):
        receipts_found = found[i]
        if isinstance(receipts_found, asyncio.Future):
            build = functools.partial(_delivery, context, service_scope, message, participants)
            author = rules.author_of(message, participants)
            deliveries.append(PendingDelivery(participants, author, receipts_found, build))
            continue
        if page is not None:
            deliveries.append(_served(context, service_scope, message, page[i]))
        else:
            deliveries.append(_delivery(context, service_scope, message, participants, receipts_found))
    return deliveries


def _delivery(
    context: RequestContext,
    service_scope: str | None,
    message: MessageRecord,
    participants: list[ParticipantRecord],
    receipts_found: list[ReceiptRecord] | BaseException,
) -> MessageDelivery:
    """The message's delivery from its Receipts list, or that list's error for its receipt fields alone."""
    if isinstance(receipts_found, BaseException):
        if not isinstance(receipts_found, Exception):
            raise receipts_found  # cancellation: not one message's error
        author = rules.author_of(message, participants)
        return MessageDelivery(participants, author, receipts_found, receipts_found, receipts_found)
    return _served(context, service_scope, message, _derived(message, participants, receipts_found))


def _served(
    context: RequestContext, service_scope: str | None, message: MessageRecord, delivery: MessageDelivery
) -> MessageDelivery:
    """`delivery`, or the same with the recipient states this request computed earlier for the message (one
    answer per message and request: `ticks` and `recipients` read the same states)."""
    derived: list[RecipientState] = delivery.states  # type: ignore[assignment]  # a derived delivery has them
    states = context.loaders.recipient_states.setdefault((service_scope, message.sid), derived)
    if states is derived:
        return delivery
    return MessageDelivery(delivery.participants, delivery.author, delivery.receipts, states, ticks_for(states))


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
