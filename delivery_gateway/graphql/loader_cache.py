"""The per-request store of a DataLoader's futures: a plain dict whose own methods are the lookups.

Strawberry's default store passes every key through a key function (the identity, by default) on each `load` and
`prime`: two Python calls per key, and a chat screen loads and primes about a hundred keys (every receipts list,
every message of its page). Keys here are hashable as they are (tuples, frozen dataclasses), so the dict's methods
serve directly.

Never outlives its loader (one request, or one subscription event), like the loader itself.
"""

from __future__ import annotations

from asyncio import Future
from collections.abc import Hashable
from typing import TypeVar

from strawberry.dataloader import AbstractCache

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class KeyCache(AbstractCache[K, T]):
    """`DataLoader(..., cache_map=KeyCache())`: futures by key. The methods below satisfy Strawberry's interface;
    each instance serves them with its dict's bound methods instead (no Python frame per call)."""

    def __init__(self) -> None:
        futures: dict[K, Future[T]] = {}
        self._futures = futures
        self.get = futures.get  # type: ignore[method-assign,assignment]
        self.set = futures.__setitem__  # type: ignore[method-assign,assignment]
        self.delete = futures.__delitem__  # type: ignore[method-assign,assignment]
        self.clear = futures.clear  # type: ignore[method-assign]

    def get(self, key: K) -> Future[T] | None:  # shadowed per instance (see the class docstring)
        return self._futures.get(key)

    def set(self, key: K, value: Future[T]) -> None:
        self._futures[key] = value

    def delete(self, key: K) -> None:
        del self._futures[key]

    def clear(self) -> None:
        self._futures.clear()
