"""Cached message pages: a page entry is message SIDs + tokens; messages live in their own entries.

Never stores a message inside a page entry (so a webhook updates one message entry alone) and never calls
upstream itself: the caller passes `fetch_page`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from delivery_gateway.cache import keys
from delivery_gateway.cache.resource_cache import ResourceCache
from delivery_gateway.kernel.records import MessageRecord, Page


@dataclass(frozen=True)
class MessagesPageRequest:
    """One `list_messages` call, hashable: the DataLoader key of a messages-page loader."""

    conversation_sid: str
    service_sid: str | None = None
    order: str = "desc"
    page_size: int = 50
    page_token: str | None = None


def page_entry(page: Page[MessageRecord]) -> dict[str, Any]:
    return {
        "sids": [m.sid for m in page.items],
        "page_size": page.page_size,
        "next": page.next_page_token,
        "prev": page.previous_page_token,
    }


def _message_key(req: MessagesPageRequest, sid: str) -> str:
    return keys.message(req.service_sid, req.conversation_sid, sid)


async def cached_message_pages(
    cache: ResourceCache,
    requests: Sequence[MessagesPageRequest],
    *,
    fetch_page: Callable[[MessagesPageRequest], Awaitable[Page[MessageRecord]]],
    ttl: float,
) -> list[Page[MessageRecord] | BaseException]:
    """Pages for `requests`, in order (a DataLoader `load_fn` body). Three cache round trips at most
    (generations, page entries, messages); a page with any message entry missing is refetched whole."""
    gen_key = {r: keys.messages_generation(r.service_sid, r.conversation_sid) for r in requests}
    generations = await cache.get_many(gen_key.values())
    page_key = {
        r: keys.messages_page(
            r.service_sid, r.conversation_sid, r.order, r.page_size, r.page_token, generations.get(gen_key[r])
        )
        for r in requests
    }
    entries = await cache.get_many(page_key.values())
    message_keys = {
        r: [_message_key(r, sid) for sid in entries[page_key[r]]["sids"]] for r in requests if page_key[r] in entries
    }
    wanted = [key for keys_of_page in message_keys.values() for key in keys_of_page]
    messages = await cache.get_many(wanted, decode=MessageRecord.from_dict)  # records (shared on memory://)

    results: dict[MessagesPageRequest, Page[MessageRecord] | BaseException] = {}
    missing: list[MessagesPageRequest] = []
    for r in dict.fromkeys(requests):
        entry = entries.get(page_key[r])
        items = [messages.get(key) for key in message_keys.get(r, ())]
        if entry is not None and None not in items:
            results[r] = Page(
                items=items,  # type: ignore[arg-type]  # no None: checked above
                page_size=entry["page_size"],
                next_page_token=entry["next"],
                previous_page_token=entry["prev"],
            )
        else:
            missing.append(r)

    fetched = await asyncio.gather(*(fetch_page(r) for r in missing), return_exceptions=True)
    to_store: dict[str, Any] = {}
    for r, page in zip(missing, fetched, strict=True):
        results[r] = page
        if isinstance(page, Page):
            # A TTL of 0 stores nothing (set_many only notes the keys for the response cache): nothing to encode.
            to_store[page_key[r]] = page_entry(page) if ttl > 0 else None
            for m in page.items:
                to_store[_message_key(r, m.sid)] = m.to_dict() if ttl > 0 else None
    await cache.set_many(to_store, ttl)
    return [results[r] for r in requests]
