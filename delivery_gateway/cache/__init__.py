"""Resource cache in front of upstream: JSON entries by key, memory:// or redis:// (see resource_cache.py).

Never imports aiocache outside backend.py.
"""

from delivery_gateway.cache.loaders import cached_lookup, cached_many, fetch_each, read_through, store_fetched
from delivery_gateway.cache.pages import MessagesPageRequest, cached_message_pages
from delivery_gateway.cache.resource_cache import ResourceCache
from delivery_gateway.cache.ttl import TtlPolicy

__all__ = [
    "MessagesPageRequest",
    "ResourceCache",
    "TtlPolicy",
    "cached_lookup",
    "cached_many",
    "cached_message_pages",
    "fetch_each",
    "read_through",
    "store_fetched",
]
