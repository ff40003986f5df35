"""The request's loaders read through the shared cache inside their batch functions: a warm query costs nothing.

Never reaches the network.
"""

from __future__ import annotations

from delivery_gateway.cache import ResourceCache
from delivery_gateway.graphql.context import GatewayServices
from tests.graphql.gql_support import CHAT_SCREEN, Runner, build_chat


class RecordingCache(ResourceCache):
    """The real memory:// ResourceCache, remembering the TTL each key was last written with."""

    def __init__(self) -> None:
        base = ResourceCache.from_url("memory://", namespace=f"t{id(self)}")
        super().__init__(base.backend, metrics=base.metrics)
        self.ttls: dict[str, float] = {}

    async def set_many(self, items, ttl):
        self.ttls.update(dict.fromkeys(items, ttl))
        await super().set_many(items, ttl)


async def test_cache_in_batch_functions_makes_warm_query_free(fake, settings):
    conv, *_ = build_chat(fake)
    cache = RecordingCache()
    gql = Runner(GatewayServices(settings=settings, upstream=fake, cache=cache))
    cold = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    cold_calls = sum(fake.calls.values())
    fake.calls.clear()
    warm = await gql(CHAT_SCREEN, {"sid": conv.record.sid})
    assert warm.errors is None and warm.data == cold.data
    assert sum(fake.calls.values()) == 0 and cold_calls > 3
    page_keys = [k for k in cache.ttls if k.startswith("messages_page:")]
    assert len(page_keys) == 1
    entry = (await cache.get_many(page_keys))[page_keys[0]]
    assert len(entry["sids"]) == 50 and "body" not in str(entry)  # SIDs + tokens only
    receipt_ttls = {ttl for k, ttl in cache.ttls.items() if k.startswith("receipts:")}
    assert receipt_ttls == {settings.ttl_receipts, settings.ttl_receipts_terminal}  # failed ones are final
