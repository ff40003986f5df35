"""A bounded memo of values derived from immutable objects, keyed by those objects' identity.

The in-process resource cache hands the same immutable records (frozen dataclasses, read-only lists: see
kernel/frozen.py) to every request that reads an entry, until the entry is replaced. What is derived from them
alone (a message's recipient states, the GraphQL objects a page serves) is then the same for every such request,
and is computed once instead of once per request. An entry replaced in the cache is a new object, so its derived
values are computed afresh: a memo can never serve what was derived from an older entry.

Never keys by equality (two equal records read at different times are different entries), never lets an identity
be reused while its entry lives (the entry holds its sources), and never grows past its size (the oldest entry is
dropped first). Not thread-safe: one event loop uses it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """`get(label, *sources)` / `put(label, sources, value)`: `label` is a plain hashable (compared by equality,
    e.g. a service scope), `sources` the immutable objects the value was derived from (compared by identity)."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, label: Hashable, *sources: object) -> V | None:
        """The value put for these very objects, or None. An entry holds its sources, so while it lives no other
        object can have their identities: a key that matches names the same objects."""
        entry = self._entries.get((label, *map(id, sources)))
        return None if entry is None else entry[1]

    def put(self, label: Hashable, sources: tuple[object, ...], value: V) -> V:
        entries = self._entries
        if len(entries) >= self.size:
            del entries[next(iter(entries))]  # the oldest entry (dicts keep insertion order)
        entries[(label, *map(id, sources))] = (sources, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
