"""Per-request DataLoaders: the only code reaching Twilio (through `ConversationsAPI`) or the shared cache.

Never outlives one request (or one subscription event) and never caches in the DataLoader's own map beyond it:
the shared cache is read and written inside the batch functions (cache/loaders.py, cache/pages.py helpers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import MessagesPageRequest, ResourceCache, TtlPolicy, cached_message_pages, keys
from delivery_gateway.cache.loaders import cached_many, fetch_each
from delivery_gateway.kernel.records import ConversationRecord, MessageRecord, Page, ParticipantRecord, ReceiptRecord
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.api import ConversationsAPI

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ConversationKey = tuple[str | None, str]  # (service_sid, conversation_sid)
MessageKey = tuple[str | None, str, str]  # (service_sid, conversation_sid, message_sid)
MessagePageKey = MessagesPageRequest  # (conversation_sid, service_sid, order, page_size, page_token)


@dataclass(frozen=True)
class ConversationPageKey:
    service_sid: str | None
    state: str | None
    page_size: int
    token: str | None


def _participants_to_json(items: list[ParticipantRecord]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in items]


def _participants_from_json(items: list[dict[str, Any]]) -> list[ParticipantRecord]:
    return [ParticipantRecord.from_dict(p) for p in items]


def _receipts_to_json(items: list[ReceiptRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in items]


def _receipts_from_json(items: list[dict[str, Any]]) -> list[ReceiptRecord]:
    return [ReceiptRecord.from_dict(r) for r in items]


class Loaders:
    """All loaders of one request. Keys carry the service SID as given (None = the default service)."""

    def __init__(self, upstream: ConversationsAPI, cache: ResourceCache | None, settings: Settings) -> None:
        self.upstream = upstream
        self.cache = cache
        self.ttl = TtlPolicy.from_settings(settings)
        self.conversation: DataLoader[ConversationKey, ConversationRecord] = DataLoader(self._conversations)
        self.conversation_page: DataLoader[ConversationPageKey, Page[ConversationRecord]] = DataLoader(
            self._conversation_pages
        )
        self.participants: DataLoader[ConversationKey, list[ParticipantRecord]] = DataLoader(self._participants)
        self.message: DataLoader[MessageKey, MessageRecord] = DataLoader(self._messages)
        self.message_page: DataLoader[MessagePageKey, Page[MessageRecord]] = DataLoader(self._message_pages)
        self.receipts: DataLoader[MessageKey, list[ReceiptRecord]] = DataLoader(self._receipts)

    async def _read_through(
        self,
        items: Sequence[K],
        fetch_one: Callable[[K], Awaitable[V]],
        *,
        cache_key: Callable[[K], str],
        encode: Callable[[V], Any],
        decode: Callable[[Any], V],
        ttl_for: Callable[[V], float],
    ) -> list[Any]:
        if self.cache is None:
            fetched = await fetch_each(items, fetch_one)
            return [fetched[item] for item in items]
        return await cached_many(
            self.cache,
            items,
            cache_key=cache_key,
            fetch_missing=lambda missing: fetch_each(missing, fetch_one),
            encode=encode,
            decode=decode,
            ttl_for=ttl_for,
        )

    async def _conversations(self, items: list[ConversationKey]) -> list[Any]:
        return await self._read_through(
            items,
            lambda k: self.upstream.fetch_conversation(k[1], service_sid=k[0]),
            cache_key=lambda k: keys.conversation(*k),
            encode=ConversationRecord.to_dict,
            decode=ConversationRecord.from_dict,
            ttl_for=lambda _: self.ttl.conversation,
        )

    async def _conversation_pages(self, items: list[ConversationPageKey]) -> list[Any]:
        """List pages are not cached (cache/keys.py names no such entry); each conversation is primed."""

        async def fetch(k: ConversationPageKey) -> Page[ConversationRecord]:
            page = await self.upstream.list_conversations(
                service_sid=k.service_sid, page_size=k.page_size, page_token=k.token, state=k.state
            )
            self.conversation.prime_many({(k.service_sid, c.sid): c for c in page.items}, force=True)
            return page

        fetched = await fetch_each(items, fetch)
        return [fetched[k] for k in items]

    async def _participants(self, items: list[ConversationKey]) -> list[Any]:
        return await self._read_through(
            items,
            lambda k: self.upstream.list_participants(k[1], service_sid=k[0]),
            cache_key=lambda k: keys.participants(*k),
            encode=_participants_to_json,
            decode=_participants_from_json,
            ttl_for=lambda _: self.ttl.participants,
        )

    async def _messages(self, items: list[MessageKey]) -> list[Any]:
        return await self._read_through(
            items,
            lambda k: self.upstream.fetch_message(k[1], k[2], service_sid=k[0]),
            cache_key=lambda k: keys.message(*k),
            encode=MessageRecord.to_dict,
            decode=MessageRecord.from_dict,
            ttl_for=lambda _: self.ttl.messages,
        )

    async def _message_pages(self, items: list[MessagePageKey]) -> list[Any]:
        """Pages cached as message SIDs + tokens, each message under its own key (a webhook updates one)."""

        async def fetch(r: MessagePageKey) -> Page[MessageRecord]:
            return await self.upstream.list_messages(
                r.conversation_sid,
                service_sid=r.service_sid,
                order=r.order,
                page_size=r.page_size,
                page_token=r.page_token,
            )

        if self.cache is None:
            fetched = await fetch_each(items, fetch)
            pages = [fetched[r] for r in items]
        else:
            pages = await cached_message_pages(self.cache, items, fetch_page=fetch, ttl=self.ttl.messages)
        for request, page in zip(items, pages, strict=True):
            if isinstance(page, Page):
                self.message.prime_many(
                    {(request.service_sid, request.conversation_sid, m.sid): m for m in page.items},
                    force=True,
                )
        return pages

    async def _receipts(self, items: list[MessageKey]) -> list[Any]:
        """Receipts all in a final state (read/failed/undelivered) are cached for the long TTL."""
        return await self._read_through(
            items,
            lambda k: self.upstream.list_receipts(k[1], k[2], service_sid=k[0]),
            cache_key=lambda k: keys.receipts(*k),
            encode=_receipts_to_json,
            decode=_receipts_from_json,
            ttl_for=self.ttl.for_receipts,
        )
