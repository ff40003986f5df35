"""The one page-size rule of the API (`first`/`last` of every paged field, and what the cost estimate assumes)
and the opaque cursor encoding every connection uses.

Never fabricates a Twilio page token: cursors only carry tokens Twilio gave. Twilio's own page-size limits are
upstream's business (upstream/api.py); UPSTREAM_PAGE_SIZE is the size the gateway reads pages at.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from strawberry import relay

from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.kernel.settings import Settings

DEFAULT_PAGE_SIZE = 50  # what a paged field returns when neither `first` nor `last` is given
# Every message and conversation page is read from Twilio at this size (within upstream.api's
# TWILIO_MAX_PAGE_SIZE), so cursors and cache entries of different windows stay interchangeable.
UPSTREAM_PAGE_SIZE = 50


@dataclass(frozen=True)
class PageSizes:
    """`first`/`last` may be 0..maximum (DELIVERY_GATEWAY_MAX_PAGE_SIZE); nothing given means `default`."""

    maximum: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> PageSizes:
        return cls(maximum=settings.max_page_size)

    @property
    def default(self) -> int:
        return min(DEFAULT_PAGE_SIZE, self.maximum)

    def check(self, name: str, value: int | None) -> None:
        """BAD_USER_INPUT for a page size outside 0..maximum (None: not given)."""
        if value is not None and not 0 <= value <= self.maximum:
            raise BadUserInput(f"{name} must be between 0 and {self.maximum}", argument=name)


def upstream_pages(window: int, page_size: int = UPSTREAM_PAGE_SIZE) -> int:
    """Upstream pages a window of `window` items may touch: the pages it fills, plus one (it may start mid-page)."""
    return -(-window // page_size) + 1


class Edge(Protocol):
    """What `page_info` reads of an edge (relay.Edge, or a connection's own edge type)."""

    @property
    def cursor(self) -> str: ...


def page_info(edges: Sequence[Edge], *, has_next_page: bool, has_previous_page: bool) -> relay.PageInfo:
    """Relay's PageInfo of a window of edges (start/end cursors from its first and last edge)."""
    return relay.PageInfo(
        has_next_page=has_next_page,
        has_previous_page=has_previous_page,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


def encode_cursor(prefix: str, *parts: str) -> str:
    """An opaque cursor: `prefix:part:part...`, base64url without padding."""
    raw = ":".join((prefix, *parts))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(argument: str, value: str, prefix: str, parts: int, what: str) -> list[str]:
    """The `parts` fields of a cursor made by `encode_cursor(prefix, ...)` (the last one may hold ':')."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        found, *fields = raw.split(":", parts)
        if found != prefix or len(fields) != parts:
            raise ValueError(raw)
        return fields
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput(f"{argument}: not a {what} cursor of this API", argument=argument) from None
