"""Conversation-level field logic: fetch one (behind the access gate), list them, page them, and roll them up.

Never returns a conversation a participant caller is not in; never calls upstream directly (loaders do).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from delivery_gateway.delivery.ticks import Ticks, ticks_for
from delivery_gateway.delivery.unread import ParticipantUnread, unread_counts
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import ConversationRecord, MessageRecord
from delivery_gateway.resolvers.access import authorize_conversation
from delivery_gateway.resolvers.errors import BadUserInput, Forbidden
from delivery_gateway.resolvers.loaders import ConversationPageKey
from delivery_gateway.resolvers.messages import participants_of, recipients_of
from delivery_gateway.resolvers.paging import MAX_WINDOW, message_window

if TYPE_CHECKING:
    from delivery_gateway.context import RequestContext

CONVERSATION_PAGE_SIZE = 50
MAX_SCAN_PAGES = 5  # participant callers: list pages scanned per request while filtering
MAX_ROLLUP_WINDOW = 200
_PREFIX = "conv1"


async def conversation(context: RequestContext, service_sid: str | None, conversation_sid: str) -> ConversationRecord:
    await authorize_conversation(context, service_sid, conversation_sid)
    return await context.loaders.conversation.load((service_sid, conversation_sid))


async def message(
    context: RequestContext, service_sid: str | None, conversation_sid: str, message_sid: str
) -> MessageRecord:
    sids.require_sid("sid", message_sid, sids.MESSAGE)
    await authorize_conversation(context, service_sid, conversation_sid)
    return await context.loaders.message.load((service_sid, conversation_sid, message_sid))


# Listing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationCursor:
    token: str | None  # Twilio PageToken of the page holding the conversation
    sid: str

    def encode(self) -> str:
        raw = f"{_PREFIX}:{self.sid}:{self.token or ''}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> ConversationCursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            prefix, sid, token = raw.split(":", 2)
            if prefix != _PREFIX or not sids.is_sid(sid, sids.CONVERSATION):
                raise ValueError(raw)
            return cls(token=token or None, sid=sid)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadUserInput("after: not a conversation cursor of this API") from None


@dataclass
class ConversationWindow:
    edges: list[tuple[ConversationRecord, ConversationCursor]] = field(default_factory=list)
    has_next_page: bool = False
    has_previous_page: bool = False


async def _visible(context: RequestContext, service_sid: str | None, records: list[ConversationRecord]):
    if context.caller.full_access:
        return records

    async def allowed(record: ConversationRecord) -> bool:
        try:
            await authorize_conversation(context, service_sid, record.sid)
        except Forbidden:
            return False
        return True

    verdicts = await asyncio.gather(*(allowed(r) for r in records))
    return [r for r, ok in zip(records, verdicts, strict=True) if ok]


async def conversation_window(
    context: RequestContext,
    service_sid: str | None,
    *,
    first: int | None = None,
    after: str | None = None,
    state: str | None = None,
) -> ConversationWindow:
    """A forward page of the service's conversations (Twilio's order).

    Participant callers see only conversations they are in: each scanned conversation costs one Participants
    list (batched, cached), and at most MAX_SCAN_PAGES upstream pages are scanned per request, so a window may
    come back short with hasNextPage true.
    """
    if service_sid is not None:
        sids.require_sid("serviceSid", service_sid, sids.SERVICE)
    want = CONVERSATION_PAGE_SIZE if first is None else first
    if not 0 <= want <= MAX_WINDOW:
        raise BadUserInput(f"first must be between 0 and {MAX_WINDOW}")
    start = ConversationCursor.decode(after) if after else None
    token = start.token if start else None
    window = ConversationWindow(has_previous_page=start is not None)
    for _ in range(MAX_SCAN_PAGES):
        page = await context.loaders.conversation_page.load(
            ConversationPageKey(service_sid, state, CONVERSATION_PAGE_SIZE, token)
        )
        items = list(page.items)
        if start is not None and start.token == token:
            sids_in_page = [c.sid for c in items]
            if start.sid in sids_in_page:
                items = items[sids_in_page.index(start.sid) + 1 :]
        for record in await _visible(context, service_sid, items):
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


async def rollup(context: RequestContext, service_sid: str | None, conversation_sid: str, window: int) -> Rollup:
    """Tick states of the latest `window` messages, the failed ones among them, and unread counts.

    Costs the messages page(s) of `last: window` (shared with a `messages(last: 50)` selection), the
    Participants list, and one Receipts list per message with non-chat recipients, all loader-batched.
    """
    if not 1 <= window <= MAX_ROLLUP_WINDOW:
        raise BadUserInput(f"window must be between 1 and {MAX_ROLLUP_WINDOW}")
    await authorize_conversation(context, service_sid, conversation_sid)
    edges = []
    before = None
    remaining = window
    while remaining > 0:  # message_window caps one call at MAX_WINDOW messages
        chunk = await message_window(
            context.loaders, service_sid, conversation_sid, last=min(remaining, MAX_WINDOW), before=before
        )
        edges = chunk.edges + edges
        remaining -= len(chunk.edges)
        if not chunk.has_previous_page or not chunk.edges:
            break
        before = chunk.edges[0].cursor.encode()
    messages = [edge.message for edge in edges]
    participants, states = await asyncio.gather(
        participants_of(context, service_sid, conversation_sid),
        asyncio.gather(*(recipients_of(context, service_sid, m) for m in messages)),
    )
    ticks = [ticks_for(s) for s in states]
    counts = Counter(ticks)
    last_index = max((m.index for m in messages), default=None)
    return Rollup(
        window=window,
        messages=len(messages),
        last_message_index=last_index,
        ticks={state: counts.get(state, 0) for state in Ticks},
        failed=[m for m, t in zip(messages, ticks, strict=True) if t is Ticks.FAILED],
        unread=unread_counts(participants, last_index),
    )
