"""Per-request DataLoader of conversations' participants: one Participants list per conversation and request.

Never outlives one request (or one subscription event); the shared cache is read inside the batch function.
"""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import ResourceCache, TtlPolicy, keys, read_through
from delivery_gateway.graphql.loader_cache import KeyCache
from delivery_gateway.kernel.records import ParticipantRecord
from delivery_gateway.upstream.api import ConversationsAPI

ConversationKey = tuple[str | None, str]  # (service scope, conversation SID)


def _to_json(items: list[ParticipantRecord]) -> list[dict[str, Any]]:
    return [p.to_dict() for p in items]


def _from_json(items: list[dict[str, Any]]) -> list[ParticipantRecord]:
    return [ParticipantRecord.from_dict(p) for p in items]


def participants_loader(
    upstream: ConversationsAPI, cache: ResourceCache | None, ttl: TtlPolicy
) -> DataLoader[ConversationKey, list[ParticipantRecord]]:
    async def load(items: list[ConversationKey]) -> list[list[ParticipantRecord] | BaseException]:
        return await read_through(
            cache,
            items,
            lambda k: upstream.list_participants(k[1], service_sid=k[0]),
            cache_key=lambda k: keys.participants(*k),
            encode=_to_json,
            decode=_from_json,
            ttl_for=lambda _: ttl.participants,
        )

    return DataLoader(load, cache_map=KeyCache())
