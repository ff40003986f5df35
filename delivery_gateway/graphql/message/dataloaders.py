"""Per-request DataLoaders of messages: one message by SID, and pages of a conversation's messages.

Never outlives one request (or one subscription event). Pages are cached as message SIDs + tokens, each message
under its own key (so a webhook updates one message entry); every message a page brings is primed.
"""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import (
    MessagesPageRequest,
    ResourceCache,
    TtlPolicy,
    cached_message_pages,
    fetch_each,
    keys,
    read_through,
)
from delivery_gateway.graphql.loader_cache import KeyCache
from delivery_gateway.kernel.records import MessageRecord, Page
from delivery_gateway.upstream.api import ConversationsAPI

MessageKey = tuple[str | None, str, str]  # (service scope, conversation SID, message SID)
MessagePageKey = MessagesPageRequest  # (conversation_sid, service_sid, order, page_size, page_token)


def message_loader(
    upstream: ConversationsAPI, cache: ResourceCache | None, ttl: TtlPolicy
) -> DataLoader[MessageKey, MessageRecord]:
    async def load(items: list[MessageKey]) -> list[MessageRecord | BaseException]:
        return await read_through(
            cache,
            items,
            lambda k: upstream.fetch_message(k[1], k[2], service_sid=k[0]),
            cache_key=lambda k: keys.message(*k),
            encode=MessageRecord.to_dict,
            decode=MessageRecord.from_dict,
            ttl_for=lambda _: ttl.messages,
        )

    return DataLoader(load, cache_map=KeyCache())


def message_page_loader(
    upstream: ConversationsAPI,
    cache: ResourceCache | None,
    ttl: TtlPolicy,
    messages: DataLoader[MessageKey, MessageRecord],
) -> DataLoader[MessagePageKey, Page[MessageRecord]]:
    async def fetch(r: MessagePageKey) -> Page[MessageRecord]:
        return await upstream.list_messages(
            r.conversation_sid,
            service_sid=r.service_sid,
            order=r.order,
            page_size=r.page_size,
            page_token=r.page_token,
        )

    async def load(items: list[MessagePageKey]) -> list[Page[MessageRecord] | BaseException]:
        pages: list[Page[MessageRecord] | BaseException]
        if cache is None:
            fetched = await fetch_each(items, fetch)
            pages = [fetched[r] for r in items]
        else:
            pages = await cached_message_pages(cache, items, fetch_page=fetch, ttl=ttl.messages)
        for request, page in zip(items, pages, strict=True):
            if isinstance(page, Page):
                messages.prime_many(
                    {(request.service_sid, request.conversation_sid, m.sid): m for m in page.items}, force=True
                )
        return pages

    return DataLoader(load, cache_map=KeyCache())
