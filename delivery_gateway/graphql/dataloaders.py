"""Every DataLoader of one request (or one subscription event), built from the domains' dataloaders modules.

Never outlives one request or event: a loader kept longer would serve stale data. Loaders are the only way
resolvers reach Twilio (through `ConversationsAPI`), the shared cache, or the ledger's histories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from delivery_gateway.cache import ResourceCache, TtlPolicy, keys, read_through
from delivery_gateway.cache.ttl import CONFIGURATION_TTL
from delivery_gateway.delivery.recipients import RecipientState
from delivery_gateway.graphql.conversation.dataloaders import conversation_loader, conversation_page_loader
from delivery_gateway.graphql.delivery.dataloaders import receipt_history_loader, receipts_loader
from delivery_gateway.graphql.loader_cache import KeyCache
from delivery_gateway.graphql.message.dataloaders import message_loader, message_page_loader
from delivery_gateway.graphql.participant.dataloaders import participants_loader
from delivery_gateway.kernel.records import ConfigurationRecord
from delivery_gateway.upstream.api import ConversationsAPI

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import GatewayServices


def configuration_loader(
    upstream: ConversationsAPI, cache: ResourceCache | None
) -> DataLoader[None, ConfigurationRecord]:
    """The account's Conversations configuration (key None: there is one), shared across requests by the cache."""

    async def load(items: list[None]) -> list[ConfigurationRecord | BaseException]:
        return await read_through(
            cache,
            items,
            lambda _: upstream.fetch_configuration(),
            cache_key=lambda _: keys.configuration(),
            encode=ConfigurationRecord.to_dict,
            decode=ConfigurationRecord.from_dict,
            ttl_for=lambda _: CONFIGURATION_TTL,
        )

    return DataLoader(load, cache_map=KeyCache())


class Loaders:
    """All loaders of one request. Keys carry the service scope as given (None = the default service)."""

    def __init__(self, services: GatewayServices) -> None:
        upstream, cache = services.upstream, services.cache
        ttl = TtlPolicy.from_settings(services.settings)
        self.configuration = configuration_loader(upstream, cache)
        self.participants = participants_loader(upstream, cache, ttl)
        self.conversation = conversation_loader(upstream, cache, ttl)
        self.conversation_page = conversation_page_loader(upstream, self.conversation)
        self.message = message_loader(upstream, cache, ttl)
        self.message_page = message_page_loader(upstream, cache, ttl, self.message)
        self.receipts = receipts_loader(upstream, cache, ttl, services.ledger)
        self.receipt_history = receipt_history_loader(services.ledger)
        # Each recipient's state per (service scope, message SID), computed once: `ticks` and `recipients` both
        # need it, and it goes with the loaders it was computed from.
        self.recipient_states: dict[tuple[str | None, str], list[RecipientState]] = {}
