"""StreamingLoader: each key of a batch settles as soon as its value is known; `looked_up` returns once every key is
settled or waiting on a call already started; the batch's closing work runs before its last key settles; one key's
failure is that key's alone. Also pins the two things it relies on in Strawberry's DataLoader (module docstring of
graphql/streaming_loader.py): the batch function runs synchronously as its batch is dispatched, and a batch whose
futures the function settled itself ends without an error.
"""

from __future__ import annotations

import asyncio

import pytest

from delivery_gateway.graphql.streaming_loader import StreamingLoader


class Upstream:
    """Values by key; each fetch answers when the test opens its gate. Records what happened, in order."""

    def __init__(self, cached: dict[str, str] | None = None) -> None:
        self.cached = cached or {}
        self.gates: dict[str, asyncio.Event] = {}
        self.events: list[str] = []
        self.failing: set[str] = set()

    async def lookup(self, keys: list[str]) -> dict[str, str]:
        await asyncio.sleep(0)  # a cache round trip
        return {k: self.cached[k] for k in keys if k in self.cached}

    async def fetch(self, key: str) -> str:
        self.events.append(f"sent {key}")
        await self.gates.setdefault(key, asyncio.Event()).wait()
        if key in self.failing:
            raise LookupError(f"no {key}")
        return key.upper()

    async def finish(self, fetched: dict[str, str]) -> None:
        self.events.append(f"finish {sorted(fetched)}")
        await asyncio.sleep(0)

    def loader(self) -> StreamingLoader[str, str]:
        async def load(keys: list[str]) -> list[str | BaseException]:
            return await loader.stream(keys, lookup=self.lookup, fetch=self.fetch, finish=self.finish)

        loader: StreamingLoader[str, str] = StreamingLoader(load)
        return loader

    def release(self, key: str) -> None:
        self.gates.setdefault(key, asyncio.Event()).set()


async def until(condition, turns: int = 200) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never met")


def track(upstream: Upstream, key: str, future: asyncio.Future) -> None:
    future.add_done_callback(lambda f: upstream.events.append(f"settled {key}"))


async def test_each_key_settles_as_its_call_answers_and_the_last_after_finish():
    upstream = Upstream(cached={"a": "cached a"})
    loader = upstream.loader()
    futures = {k: loader.load(k) for k in ("a", "b", "c", "d")}
    for key, future in futures.items():
        track(upstream, key, future)
    await loader.looked_up(list(futures))
    # The cache's value is known; every other key waits on a call already sent.
    assert futures["a"].done() and await futures["a"] == "cached a"
    assert [k for k in "bcd" if futures[k].done()] == []
    assert all(loader.waiting_upstream(k) for k in "bcd") and not loader.waiting_upstream("a")
    assert upstream.events[-3:] == ["sent b", "sent c", "sent d"]
    upstream.release("c")
    await until(lambda: futures["c"].done())
    assert await futures["c"] == "C" and not futures["b"].done() and not futures["d"].done()
    upstream.release("d")
    upstream.release("b")
    assert await futures["b"] == "B" and await futures["d"] == "D"
    # The last answer (b) is settled only once the batch's closing work is done.
    assert upstream.events.index("finish ['b', 'c', 'd']") < upstream.events.index("settled b")
    assert upstream.events.index("settled d") < upstream.events.index("finish ['b', 'c', 'd']")
    assert not any(loader.waiting_upstream(k) for k in "abcd")


async def test_a_failing_call_fails_its_key_alone():
    upstream = Upstream()
    upstream.failing.add("b")
    loader = upstream.loader()
    futures = [loader.load(k) for k in ("a", "b", "c")]
    await loader.looked_up(["a", "b", "c"])
    for key in ("b", "a", "c"):
        upstream.release(key)
    with pytest.raises(LookupError, match="no b"):
        await futures[1]
    assert await futures[0] == "A" and await futures[2] == "C"
    assert upstream.events[-1] == "finish ['a', 'c']"


async def test_a_failing_lookup_fails_every_key_of_the_batch():
    upstream = Upstream()

    async def broken(keys: list[str]) -> dict[str, str]:
        raise OSError("cache down and not degrading")

    upstream.lookup = broken  # type: ignore[method-assign]
    loader = upstream.loader()
    futures = [loader.load(k) for k in ("a", "b")]
    await loader.looked_up(["a", "b"])
    for future in futures:
        with pytest.raises(OSError, match="cache down"):
            await future


async def test_keys_of_one_request_load_once_and_a_later_batch_streams_too():
    upstream = Upstream()
    loader = upstream.loader()
    first = loader.load("a")
    assert loader.load("a") is first  # one future per key and loader (request)
    await loader.looked_up(["a"])
    second = loader.load("b")  # a new batch, dispatched on the next turn
    await loader.looked_up(["a", "b"])
    assert loader.waiting_upstream("a") and loader.waiting_upstream("b")
    upstream.release("b")
    assert await second == "B" and not first.done()
    upstream.release("a")
    assert await first == "A"


async def test_strawberry_dispatch_ends_cleanly_after_the_batch_settled_its_futures():
    """The batch function is called as its batch is dispatched (so `loader.batch` is that batch), and hands back an
    emptied batch: Strawberry's dispatch then sets nothing twice (which would raise InvalidStateError in its task)."""
    upstream = Upstream()
    loader = upstream.loader()
    futures = [loader.load(k) for k in ("a", "b")]
    batch = loader.batch
    await loader.looked_up(["a", "b"])
    assert batch is not None and batch.dispatched
    dispatch = batch._dispatch_task  # Strawberry's task running the batch function
    assert dispatch is not None and not dispatch.done()
    upstream.release("a")
    upstream.release("b")
    assert [await f for f in futures] == ["A", "B"]
    await dispatch  # raises what the task raised, if anything
    assert batch.tasks == []


async def test_a_batch_function_that_is_not_its_loaders_fails_its_keys_and_wakes_waiters():
    """Misuse (streaming another loader's batch) fails the keys with a clear error instead of leaving a page that
    waits for them (`looked_up`) waiting for ever."""
    upstream = Upstream()
    other = upstream.loader()

    async def load(keys: list[str]) -> list[str | BaseException]:
        return await other.stream(keys, lookup=upstream.lookup, fetch=upstream.fetch, finish=upstream.finish)

    loader: StreamingLoader[str, str] = StreamingLoader(load)
    other._progress = asyncio.get_running_loop().create_future()  # a page waiting on the other loader
    waiting = other._progress
    future = loader.load("a")
    with pytest.raises(RuntimeError, match="must be the body of its own loader"):
        await asyncio.wait_for(future, 5)
    assert waiting.done()
