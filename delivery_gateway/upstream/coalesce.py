"""Single-flight: identical in-flight upstream reads from concurrent requests share one call.

Never coalesces writes, and never caches: a key is forgotten the moment its call completes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Run `fn` once per key among concurrent callers; everyone gets its result (or its exception).

    The shared call runs in its own task, so one caller being cancelled does not cancel it for the others.
    """

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`(result, shared)`: `shared` is True when this caller joined a call another caller started."""
        future = self._inflight.get(key)
        shared = future is not None
        if future is None:
            future = asyncio.ensure_future(fn())
            self._inflight[key] = future
            future.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(future), shared

    def _done(self, key: Hashable, future: asyncio.Future[T]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # mark retrieved: every waiter may have gone away
