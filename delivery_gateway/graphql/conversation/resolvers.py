"""Conversation field logic: fetch one (behind the access gate), list them, and roll up their latest messages.

Never returns a conversation a participant caller is not in; never calls upstream directly (loaders do).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from delivery_gateway.delivery.ticks import Ticks
from delivery_gateway.delivery.unread import ParticipantUnread, unread_counts
from delivery_gateway.graphql.access import authorize, effective_service, may_see_conversation
from delivery_gateway.graphql.conversation.dataloaders import ConversationPageKey
from delivery_gateway.graphql.delivery.resolvers import deliveries_of
from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.graphql.message.paging import MessageEdge, MessageWindow, first_page, message_window
from delivery_gateway.graphql.paging import UPSTREAM_PAGE_SIZE, decode_cursor, encode_cursor, upstream_pages
from delivery_gateway.graphql.participant.resolvers import participants_of
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import ConversationRecord, MessageRecord
from delivery_gateway.upstream.errors import UpstreamCircuitOpen

if TYPE_CHECKING:
    from strawberry.dataloader import DataLoader

    from delivery_gateway.graphql.context import RequestContext

# Participant callers see only conversations they are in, so a page of theirs is filtered from upstream pages:
# at most this many are scanned per request (the cost estimate and the schema's description say so too).
MAX_SCAN_PAGES = 5
MAX_ROLLUP_WINDOW = 200
_PREFIX = "conv1"


@dataclass(frozen=True)
class Ahead:
    """What a conversation's selection will read next, started in the same round as the conversation itself:
    its participants, and the first messages page of each `messages` window (as `message_window` arguments)."""

    participants: bool = False
    windows: tuple[dict[str, Any], ...] = ()


def _settle(loader: DataLoader[Any, Any], key: Any) -> Callable[[asyncio.Future[Any]], None]:
    """What happens to a load started ahead once it ends: its failure is marked seen (the field that reads it
    reports it, or none does because the conversation itself failed; never an unretrieved exception), and a load
    the circuit breaker refused before sending anything is forgotten, so the field asks again itself (the
    conversation's call may have been the probe that closed the breaker meanwhile)."""

    def settle(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if isinstance(future.exception(), UpstreamCircuitOpen):
            loader.clear(key)

    return settle


def _start(context: RequestContext, scope: str | None, conversation_sid: str, ahead: Ahead) -> None:
    loaders = context.loaders
    started: list[tuple[DataLoader[Any, Any], Any]] = []
    if ahead.participants:
        started.append((loaders.participants, (scope, conversation_sid)))
    for window in ahead.windows:
        key = first_page(context.page_sizes, scope, conversation_sid, **window)
        if key is not None:
            started.append((loaders.message_page, key))
    for loader, key in started:
        future = loader.load(key)
        if isinstance(future, asyncio.Future):  # DataLoader.load returns its cached future
            future.add_done_callback(_settle(loader, key))


async def conversation(
    context: RequestContext,
    service_sid: str | None,
    conversation_sid: str,
    *,
    arguments: tuple[str, str] = ("serviceSid", "conversationSid"),
    ahead: Ahead | None = None,
) -> tuple[str | None, ConversationRecord]:
    """(the service scope it was read through, the conversation), behind the access rule.

    With `ahead`, the participants and first messages pages its selection reads are loaded in the same round as
    the conversation (the SID is all they need), so a chat screen costs two dependent rounds: this one, then
    every Receipts list at once. Nothing is started before the access rule passed.
    """
    scope = await authorize(context, service_sid, conversation_sid, arguments=arguments)
    record = context.loaders.conversation.load((scope, conversation_sid))  # first: its call is sent first
    if ahead is not None:
        _start(context, scope, conversation_sid, ahead)
    return scope, await record


async def messages(
    context: RequestContext,
    service_scope: str | None,
    conversation_sid: str,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> MessageWindow:
    """A window of the conversation's messages (message/paging.py), behind the access rule."""
    scope = await authorize(context, service_scope, conversation_sid)
    return await message_window(
        context.loaders, context.page_sizes, scope, conversation_sid, first=first, after=after, last=last, before=before
    )


# Listing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationCursor:
    token: str | None  # Twilio PageToken of the page holding the conversation
    sid: str

    def encode(self) -> str:
        return encode_cursor(_PREFIX, self.sid, self.token or "")

    @classmethod
    def decode(cls, value: str) -> ConversationCursor:
        sid, token = decode_cursor("after", value, _PREFIX, 2, "conversation")
        if not sids.is_sid(sid, sids.CONVERSATION):
            raise BadUserInput("after: not a conversation cursor of this API", argument="after")
        return cls(token=token or None, sid=sid)


@dataclass
class ConversationWindow:
    edges: list[tuple[ConversationRecord, ConversationCursor]] = field(default_factory=list)
    has_next_page: bool = False
    has_previous_page: bool = False


def scan_pages(want: int) -> int:
    """Upstream pages one listing may read: enough for `want` conversations, and MAX_SCAN_PAGES at least."""
    return max(MAX_SCAN_PAGES, upstream_pages(want))


async def _visible(
    context: RequestContext, service_scope: str | None, records: list[ConversationRecord]
) -> list[ConversationRecord]:
    if context.caller.full_access:
        return records
    verdicts = await asyncio.gather(*(may_see_conversation(context, service_scope, r.sid) for r in records))
    return [r for r, ok in zip(records, verdicts, strict=True) if ok]


async def conversation_window(
    context: RequestContext,
    service_sid: str | None,
    *,
    first: int | None = None,
    after: str | None = None,
    state: str | None = None,
) -> tuple[str | None, ConversationWindow]:
    """(the service scope read, a forward page of that service's conversations in Twilio's order).

    Participant callers list their own service only and see only conversations they are in: each scanned
    conversation costs one Participants list (batched, cached), and at most `scan_pages` upstream pages are
    scanned per request, so a window may come back short with hasNextPage true.
    """
    service_scope = await effective_service(context, service_sid)
    return service_scope, await _conversation_window(context, service_scope, first=first, after=after, state=state)


async def _conversation_window(
    context: RequestContext,
    service_scope: str | None,
    *,
    first: int | None,
    after: str | None,
    state: str | None,
) -> ConversationWindow:
    context.page_sizes.check("first", first)
    want = context.page_sizes.default if first is None else first
    start = ConversationCursor.decode(after) if after else None
    token = start.token if start else None
    window = ConversationWindow(has_previous_page=start is not None)
    for _ in range(scan_pages(want)):
        page = await context.loaders.conversation_page.load(
            ConversationPageKey(service_scope, state, UPSTREAM_PAGE_SIZE, token)
        )
        items = list(page.items)
        if start is not None and start.token == token:
            sids_in_page = [c.sid for c in items]
            if start.sid in sids_in_page:
                items = items[sids_in_page.index(start.sid) + 1 :]
        for record in await _visible(context, service_scope, items):
            if len(window.edges) == want:
                window.has_next_page = True
                return window
            window.edges.append((record, ConversationCursor(token, record.sid)))
        token = page.next_page_token
        if token is None:
            return window
        if len(window.edges) == want:
            window.has_next_page = True
            return window
    window.has_next_page = True
    return window


# Rollup -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollup:
    window: int
    messages: int
    last_message_index: int | None
    ticks: dict[Ticks, int]
    failed: list[MessageRecord]
    unread: list[ParticipantUnread]


async def rollup(context: RequestContext, service_scope: str | None, conversation_sid: str, window: int) -> Rollup:
    """Tick states of the latest `window` messages, the failed ones among them, and unread counts.

    Costs the messages page(s) of `last: window` (shared with a `messages(last: 50)` selection), the
    Participants list, and one Receipts list per message with non-chat recipients, all loader-batched.
    """
    if not 1 <= window <= MAX_ROLLUP_WINDOW:
        raise BadUserInput(f"window must be between 1 and {MAX_ROLLUP_WINDOW}", argument="window")
    service_scope = await authorize(context, service_scope, conversation_sid)
    page_sizes = context.page_sizes
    edges: list[MessageEdge] = []
    before = None
    remaining = window
    older_exist = False
    while remaining > 0:  # one message window holds at most the largest page size
        chunk = await message_window(
            context.loaders,
            page_sizes,
            service_scope,
            conversation_sid,
            last=min(remaining, page_sizes.maximum),
            before=before,
        )
        edges = chunk.edges + edges
        remaining -= len(chunk.edges)
        older_exist = chunk.has_previous_page
        if not chunk.has_previous_page or not chunk.edges:
            break
        before = chunk.edges[0].cursor.encode()
    messages = [edge.message for edge in edges]
    participants = await participants_of(context, service_scope, conversation_sid)
    ticks = []
    for loaded in await deliveries_of(context, service_scope, conversation_sid, messages):
        if isinstance(loaded.ticks, Exception):
            raise loaded.ticks  # one message's receipts failed: the roll-up cannot count it
        ticks.append(cast(Ticks, loaded.ticks))
    counts = Counter(ticks)
    last_index = max((m.index for m in messages), default=None)
    return Rollup(
        window=window,
        messages=len(messages),
        last_message_index=last_index,
        ticks={state: counts.get(state, 0) for state in Ticks},
        failed=[m for m, t in zip(messages, ticks, strict=True) if t is Ticks.FAILED],
        unread=unread_counts(participants, [m.index for m in messages], older_exist),
    )
