"""Per-request DataLoaders of conversations: one conversation by SID, and pages of the conversation list.

Never outlives one request (or one subscription event). List pages are not cached (cache/keys.py names no such
entry); every conversation a page brings is primed into the conversation loader instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import ResourceCache, TtlPolicy, fetch_each, keys, read_through
from delivery_gateway.graphql.loader_cache import KeyCache
from delivery_gateway.kernel.records import ConversationRecord, Page
from delivery_gateway.upstream.api import ConversationsAPI

ConversationKey = tuple[str | None, str]  # (service scope, conversation SID)


@dataclass(frozen=True)
class ConversationPageKey:
    service_sid: str | None
    state: str | None
    page_size: int
    token: str | None


def conversation_loader(
    upstream: ConversationsAPI, cache: ResourceCache | None, ttl: TtlPolicy
) -> DataLoader[ConversationKey, ConversationRecord]:
    async def load(items: list[ConversationKey]) -> list[ConversationRecord | BaseException]:
        return await read_through(
            cache,
            items,
            lambda k: upstream.fetch_conversation(k[1], service_sid=k[0]),
            cache_key=lambda k: keys.conversation(*k),
            encode=ConversationRecord.to_dict,
            decode=ConversationRecord.from_dict,
            ttl_for=lambda _: ttl.conversation,
        )

    return DataLoader(load, cache_map=KeyCache())


def conversation_page_loader(
    upstream: ConversationsAPI, conversations: DataLoader[ConversationKey, ConversationRecord]
) -> DataLoader[ConversationPageKey, Page[ConversationRecord]]:
    async def fetch(k: ConversationPageKey) -> Page[ConversationRecord]:
        page = await upstream.list_conversations(
            service_sid=k.service_sid, page_size=k.page_size, page_token=k.token, state=k.state
        )
        conversations.prime_many({(k.service_sid, c.sid): c for c in page.items}, force=True)
        return page

    async def load(items: list[ConversationPageKey]) -> list[Page[ConversationRecord] | BaseException]:
        fetched = await fetch_each(items, fetch)
        return [fetched[k] for k in items]

    return DataLoader(load, cache_map=KeyCache())
