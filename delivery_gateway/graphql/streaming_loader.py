"""A DataLoader whose batch settles each key as soon as its value is known, instead of all keys once the slowest
upstream call of the batch has answered.

A chat screen's Receipts lists are one batch of ~33 upstream calls whose answers arrive spread over time; a page can
complete each message's delivery fields as its own list arrives (graphql/delivery/resolvers.py), overlapping
graphql-core's completion with the wait for the rest. `looked_up(keys)` tells a page which keys are settled
without upstream (cache hits: plain values, as before) and which wait on an upstream call already sent.

What is still done once per batch after its last answer (cache writes, which also note the read for the response
cache, and the ledger's tracking) happens before the batch's last key is settled, so an execution that reads every
key still cannot finish before it: the same order as a whole-batch loader.

Relies on Strawberry's DataLoader calling the batch function synchronously as it dispatches a batch (the batch is
then `loader.batch`), and on `Batch.tasks` holding each key's future: the batch function settles those futures itself
and hands Strawberry an empty batch to settle (tests/graphql/test_streaming_loader.py pins both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from typing import Any, Generic, TypeVar

from strawberry.dataloader import DataLoader

from delivery_gateway.graphql.loader_cache import KeyCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class StreamingLoader(DataLoader[K, V], Generic[K, V]):
    """`load(key)` as any DataLoader (one batch per loop turn, one future per key and request); `stream` is the
    body of its batch function (see the module docstring)."""

    def __init__(self, load_fn: Callable[[list[K]], Awaitable[Sequence[V | BaseException]]]) -> None:
        super().__init__(load_fn, cache_map=KeyCache())
        self._upstream: set[K] = set()  # keys whose value waits on an upstream call already started
        self._progress: asyncio.Future[None] | None = None  # resolved each time a batch has looked its keys up

    def waiting_upstream(self, key: K) -> bool:
        """True while `key`'s value waits on an upstream call (its future then settles when that call answers)."""
        return key in self._upstream

    async def looked_up(self, keys: Sequence[K]) -> None:
        """Returns once each key loaded so far is settled or waiting on an upstream call already started: what is
        settled by then is what the resource cache held (or an earlier batch of this request loaded)."""
        futures = self.cache_map.get
        while True:
            for key in keys:
                future = futures(key)
                if future is not None and not future.done() and key not in self._upstream:
                    break
            else:
                return
            if self._progress is None:
                self._progress = asyncio.get_running_loop().create_future()
            await self._progress

    def _progressed(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None and not progress.done():
            progress.set_result(None)

    async def stream(
        self,
        keys: list[K],
        *,
        lookup: Callable[[list[K]], Awaitable[dict[K, V]]],
        fetch: Callable[[K], Coroutine[Any, Any, V]],
        finish: Callable[[dict[K, V]], Awaitable[None]],
    ) -> list[V | BaseException]:
        """The batch function's body: `lookup(keys)` returns the values known without upstream (settled at once);
        every other key is `fetch`ed, all at once, and settled as its call answers (an exception settles that key
        alone); `finish(fetched)` runs once every call has answered (with the successes), before the last key is
        settled. Returns what Strawberry's dispatch expects of a batch whose futures are all settled already."""
        batch = self.batch  # Strawberry calls the batch function synchronously on dispatch: this one
        if batch is None or not batch.dispatched or [task.key for task in batch.tasks] != keys:
            self._progressed()  # waiters look again once Strawberry has failed the batch's keys with this
            raise RuntimeError("StreamingLoader.stream must be the body of its own loader's batch function")
        futures = [task.future for task in batch.tasks]
        by_key = dict(zip(keys, futures, strict=True))
        loop = asyncio.get_running_loop()

        def settle(key: K, value: V | BaseException) -> None:
            future = by_key[key]
            if future.done():
                return
            if isinstance(value, asyncio.CancelledError):
                future.cancel()
            elif isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

        fetched: dict[K, V] = {}
        held: list[tuple[K, V | BaseException]] = []  # the last answer, settled after `finish`
        calls: list[asyncio.Task[V]] = []
        error: Exception | None = None
        try:
            found = await lookup(keys)
            for key, hit in found.items():
                settle(key, hit)
            missing = [key for key in by_key if key not in found]
            outstanding = len(missing)

            def answered(key: K, task: asyncio.Task[V]) -> None:
                nonlocal outstanding
                outstanding -= 1
                self._upstream.discard(key)
                answer: V | BaseException
                if task.cancelled():
                    answer = asyncio.CancelledError()
                elif (exc := task.exception()) is not None:
                    answer = exc
                else:
                    answer = fetched[key] = task.result()
                if outstanding:
                    settle(key, answer)
                else:
                    held.append((key, answer))

            for key in missing:
                self._upstream.add(key)
                call = loop.create_task(fetch(key))
                call.add_done_callback(lambda task, key=key: answered(key, task))  # type: ignore[misc]
                calls.append(call)
            if calls:
                # Each call's first step (queued before this one) hands its request to the HTTP client's own task
                # (single-flight), whose first step sends it: both run before waiters resume, so work a waiter does
                # next (completing what is already known) never holds a request back.
                await asyncio.sleep(0)
            self._progressed()
            if calls:
                await asyncio.wait(calls)
            await finish(fetched)
        except Exception as exc:
            error = exc
        except BaseException:  # cancelled: every caller gave up (Strawberry cancels a batch nobody waits for)
            for call in calls:
                call.cancel()
            raise
        finally:
            for key, last in held:
                settle(key, last)
            self._progressed()
        if error is not None:
            for key in by_key:
                settle(key, error)
        batch.tasks = []  # every future is settled here: nothing left for Strawberry's dispatch to settle
        return []
