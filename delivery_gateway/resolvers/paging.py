"""Relay-style windows over Twilio's message pages: cursors carry (order, page token, message index).

Never fabricates a Twilio page token: a cursor only replays a token Twilio gave, and the index picks the spot
from there, so any cursor (first/after or last/before, from either order) resumes exactly.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from delivery_gateway.kernel.records import MessageRecord
from delivery_gateway.resolvers.errors import BadUserInput
from delivery_gateway.resolvers.loaders import Loaders, MessagePageKey

PAGE_SIZE = 50  # every message page is fetched at this size, so cursors and cache entries stay interchangeable
MAX_WINDOW = 100
MAX_PAGES_PER_WINDOW = 6  # guards against a cursor pointing into a page that no longer holds its message
_PREFIX = "msg1"


@dataclass(frozen=True)
class MessageCursor:
    order: str  # order of the upstream page the edge came from: "asc" | "desc"
    token: str | None  # Twilio PageToken that fetched that page (None: the first page in that order)
    index: int  # the message's index

    def encode(self) -> str:
        raw = f"{_PREFIX}:{self.order}:{self.index}:{self.token or ''}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, argument: str, value: str) -> MessageCursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            prefix, order, index, token = raw.split(":", 3)
            if prefix != _PREFIX or order not in ("asc", "desc"):
                raise ValueError(raw)
            return cls(order=order, token=token or None, index=int(index))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadUserInput(f"{argument}: not a message cursor of this API") from None


@dataclass(frozen=True)
class MessageEdge:
    message: MessageRecord
    cursor: MessageCursor


@dataclass(frozen=True)
class MessageWindow:
    edges: list[MessageEdge]  # oldest first, as Relay connections are ordered
    has_next_page: bool
    has_previous_page: bool


def _check_count(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_WINDOW:
        raise BadUserInput(f"{name} must be between 0 and {MAX_WINDOW}")


async def _walk(
    loaders: Loaders,
    service_sid: str | None,
    conversation_sid: str,
    start: MessageCursor | None,
    newer: bool,
    want: int,
) -> tuple[list[MessageEdge], bool]:
    """Collect up to `want` messages moving newer (ascending index) or older, strictly past `start`.

    Returns the edges in walking order and whether more messages lie beyond them.
    """
    order = start.order if start else ("asc" if newer else "desc")
    token = start.token if start else None
    edges: list[MessageEdge] = []
    for _ in range(MAX_PAGES_PER_WINDOW):
        page = await loaders.message_page.load(
            MessagePageKey(
                conversation_sid, service_sid=service_sid, order=order, page_size=PAGE_SIZE, page_token=token
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
    service_sid: str | None,
    conversation_sid: str,
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> MessageWindow:
    """`first`/`after` pages forward (oldest first); `last`/`before` backward (`last: 50` = the latest 50).

    Nothing given means `last: 50`. Costs one upstream page per 50 messages crossed (fewer when cached).
    """
    _check_count("first", first)
    _check_count("last", last)
    if (first is not None or after is not None) and (last is not None or before is not None):
        raise BadUserInput("use either first/after (forward) or last/before (backward), not both")
    if first is not None or after is not None:
        start = MessageCursor.decode("after", after) if after else None
        edges, more = await _walk(loaders, service_sid, conversation_sid, start, True, first or PAGE_SIZE)
        return MessageWindow(edges, has_next_page=more, has_previous_page=start is not None)
    start = MessageCursor.decode("before", before) if before else None
    edges, more = await _walk(loaders, service_sid, conversation_sid, start, False, PAGE_SIZE if last is None else last)
    edges.reverse()
    return MessageWindow(edges, has_next_page=start is not None, has_previous_page=more)
