"""Relay-style windows over Twilio's message pages: cursors carry (order, page token, message index).

Never fabricates a Twilio page token: a cursor only replays a token Twilio gave, and the index picks the spot
from there, so any cursor (first/after or last/before, from either order) resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.graphql.message.dataloaders import MessagePageKey
from delivery_gateway.graphql.paging import UPSTREAM_PAGE_SIZE, PageSizes, decode_cursor, encode_cursor, upstream_pages
from delivery_gateway.kernel.records import MessageRecord

if TYPE_CHECKING:
    from delivery_gateway.graphql.dataloaders import Loaders

# Pages a window may read beyond the ones it fills: guards against a cursor pointing into a page that no longer
# holds its message (it moved as messages were added or removed).
EXTRA_PAGES = 3
_PREFIX = "msg1"


@dataclass(frozen=True)
class MessageCursor:
    order: str  # order of the upstream page the edge came from: "asc" | "desc"
    token: str | None  # Twilio PageToken that fetched that page (None: the first page in that order)
    index: int  # the message's index

    def encode(self) -> str:
        return encode_cursor(_PREFIX, self.order, str(self.index), self.token or "")

    @classmethod
    def decode(cls, argument: str, value: str) -> MessageCursor:
        order, index, token = decode_cursor(argument, value, _PREFIX, 3, "message")
        try:
            if order not in ("asc", "desc"):
                raise ValueError(order)
            return cls(order=order, token=token or None, index=int(index))
        except ValueError:
            raise BadUserInput(f"{argument}: not a message cursor of this API", argument=argument) from None


@dataclass(frozen=True)
class MessageEdge:
    message: MessageRecord
    cursor: MessageCursor


@dataclass(frozen=True)
class MessageWindow:
    edges: list[MessageEdge]  # oldest first, as Relay connections are ordered
    has_next_page: bool
    has_previous_page: bool


def _first_key(
    service_scope: str | None, conversation_sid: str, start: MessageCursor | None, newer: bool
) -> MessagePageKey:
    """The upstream page a walk starts from: the cursor's own page, else the first page in walking order."""
    return MessagePageKey(
        conversation_sid,
        service_sid=service_scope,
        order=start.order if start else ("asc" if newer else "desc"),
        page_size=UPSTREAM_PAGE_SIZE,
        page_token=start.token if start else None,
    )


@dataclass(frozen=True)
class _Direction:
    start: MessageCursor | None  # the cursor to walk past, if any
    newer: bool  # forward (first/after) or backward (last/before)
    want: int


def _direction(
    page_sizes: PageSizes, first: int | None, after: str | None, last: int | None, before: str | None
) -> _Direction:
    """Which way a window walks, from where, for how many: the arguments' one rule (BAD_USER_INPUT otherwise)."""
    page_sizes.check("first", first)
    page_sizes.check("last", last)
    if (first is not None or after is not None) and (last is not None or before is not None):
        raise BadUserInput("use either first/after (forward) or last/before (backward), not both")
    if first is not None or after is not None:
        start = MessageCursor.decode("after", after) if after else None
        return _Direction(start, True, page_sizes.default if first is None else first)
    start = MessageCursor.decode("before", before) if before else None
    return _Direction(start, False, page_sizes.default if last is None else last)


def first_page(
    page_sizes: PageSizes,
    service_scope: str | None,
    conversation_sid: str,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> MessagePageKey | None:
    """The first upstream page `message_window` reads for these arguments (None for arguments it refuses, which
    it reports itself): what a conversation's resolver can start loading before the window is asked for."""
    try:
        direction = _direction(page_sizes, first, after, last, before)
    except BadUserInput:
        return None
    return _first_key(service_scope, conversation_sid, direction.start, direction.newer)


async def _walk(
    loaders: Loaders,
    service_scope: str | None,
    conversation_sid: str,
    start: MessageCursor | None,
    newer: bool,
    want: int,
) -> tuple[list[MessageEdge], bool]:
    """Collect up to `want` messages moving newer (ascending index) or older, strictly past `start`.

    Returns the edges in walking order and whether more messages lie beyond them.
    """
    first = _first_key(service_scope, conversation_sid, start, newer)
    order, token = first.order, first.page_token
    edges: list[MessageEdge] = []
    for _ in range(max(6, upstream_pages(want) + EXTRA_PAGES)):
        page = await loaders.message_page.load(
            MessagePageKey(
                conversation_sid, service_sid=service_scope, order=order, page_size=UPSTREAM_PAGE_SIZE, page_token=token
            )
        )
        items: list[MessageRecord] = list(page.items)
        walks_forward = (order == "asc") == newer  # upstream order matches walking direction
        if not walks_forward:
            items.reverse()
        if start is not None:
            items = [m for m in items if (m.index > start.index if newer else m.index < start.index)]
        page_last = page.items[-1] if page.items else None
        for message in items:
            if len(edges) == want:
                return edges, True
            # The last message of a page (in its own order) points at the following page directly, so resuming
            # past it costs exactly that page; resuming the other way finds the spot one page later.
            at_end = message is page_last and page.next_page_token is not None
            edges.append(
                MessageEdge(message, MessageCursor(order, page.next_page_token if at_end else token, message.index))
            )
        token = page.next_page_token if walks_forward else page.previous_page_token
        if token is None:
            return edges, False
        if len(edges) == want:
            return edges, True
    return edges, True


async def message_window(
    loaders: Loaders,
    page_sizes: PageSizes,
    service_scope: str | None,
    conversation_sid: str,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> MessageWindow:
    """`first`/`after` pages forward (oldest first); `last`/`before` backward (`last: 50` = the latest 50).

    Nothing given means `last` of the default page size. Costs one upstream page per UPSTREAM_PAGE_SIZE
    messages crossed (fewer when cached).
    """
    direction = _direction(page_sizes, first, after, last, before)
    start = direction.start
    edges, more = await _walk(loaders, service_scope, conversation_sid, start, direction.newer, direction.want)
    if direction.newer:
        return MessageWindow(edges, has_next_page=more, has_previous_page=start is not None)
    edges.reverse()
    return MessageWindow(edges, has_next_page=start is not None, has_previous_page=more)
