"""Twilio's list paging: PageSize/Page/PageToken parameters, cursor page tokens and the `meta` envelope.

Pure functions over already-ordered item lists; never fetches anything, never knows which resource it pages.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from delivery_gateway.emulator.errors import bad_request

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50
AFTER, BEFORE = "a", "b"


@dataclass(frozen=True)
class PageToken:
    """A cursor: the page holds the items strictly after (or before) the item whose sort key is `key`."""

    direction: str  # AFTER | BEFORE
    key: int

    def encode(self) -> str:
        raw = f"{self.direction}{self.key}".encode()
        return "PT" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageToken:
        try:
            if not text.startswith("PT"):
                raise ValueError(text)
            body = text[2:]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
            direction, key = raw[0], int(raw[1:])
            if direction not in (AFTER, BEFORE):
                raise ValueError(text)
        except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
            raise bad_request(f"Invalid PageToken: {text}") from None
        return cls(direction, key)


@dataclass(frozen=True)
class PageRequest:
    page_size: int
    page: int
    token: PageToken | None


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"Invalid {name}: {text!r} is not an integer") from None


def parse_page_request(query: Mapping[str, str], limit: int) -> PageRequest:
    """Read PageSize (1..limit, as the spec bounds it), Page (>= 0) and PageToken; 400 when out of bounds."""
    page_size = _integer(query, "PageSize", min(DEFAULT_PAGE_SIZE, limit))
    if not 1 <= page_size <= limit:
        raise bad_request(f"Invalid PageSize: {page_size}. PageSize must be between 1 and {limit}")
    page = _integer(query, "Page", 0)
    if page < 0:
        raise bad_request(f"Invalid Page: {page}. Page must be 0 or greater")
    token = query.get("PageToken")
    return PageRequest(page_size, page, PageToken.decode(token) if token else None)


@dataclass(frozen=True)
class PageSlice:
    items: list[Any]
    next_token: PageToken | None
    previous_token: PageToken | None


def slice_page(
    items: Sequence[T], sort_key: Callable[[T], int], request: PageRequest, *, descending: bool = False
) -> PageSlice:
    """The requested page of `items`, already in list order (keys strictly increasing, or decreasing)."""
    keys = [sort_key(item) for item in items]

    def beyond(key: int, cursor: int) -> bool:
        return key < cursor if descending else key > cursor

    if request.token is None:
        start = request.page * request.page_size
    elif request.token.direction == AFTER:
        start = next((i for i, key in enumerate(keys) if beyond(key, request.token.key)), len(keys))
    else:
        end = next((i for i, key in enumerate(keys) if not beyond(request.token.key, key)), len(keys))
        start = max(end - request.page_size, 0)
    page = list(items[start : start + request.page_size])
    end = start + len(page)
    next_token = PageToken(AFTER, keys[end - 1]) if page and end < len(items) else None
    previous_token = PageToken(BEFORE, keys[start]) if page and start > 0 else None
    return PageSlice(page, next_token, previous_token)


def page_envelope(
    *,
    key: str,
    items_json: list[dict[str, Any]],
    collection_url: str,
    filters: Mapping[str, str],
    request: PageRequest,
    page: PageSlice,
) -> dict[str, Any]:
    """The list body: `{key: [...], "meta": {...}}` with absolute first/previous/current/next page URLs."""

    def url(page_number: int, token: PageToken | None) -> str:
        query = {**filters, "PageSize": str(request.page_size), "Page": str(page_number)}
        if token is not None:
            query["PageToken"] = token.encode()
        return f"{collection_url}?{urlencode(query)}"

    return {
        key: items_json,
        "meta": {
            "page": request.page,
            "page_size": request.page_size,
            "first_page_url": url(0, None),
            "previous_page_url": (url(max(request.page - 1, 0), page.previous_token) if page.previous_token else None),
            "url": url(request.page, request.token),
            "next_page_url": url(request.page + 1, page.next_token) if page.next_token else None,
            "key": key,
        },
    }
