"""bench.counters counts exactly what one operation does (fields, resolvers, tasks, loads, collections), and leaves
nothing behind: the task factory, `DataLoader.load`, the schema's extensions and `gc.callbacks` are restored.
"""

from __future__ import annotations

import asyncio
import gc

import strawberry
from strawberry.dataloader import DataLoader

from bench.counters import count_fields, count_gc, count_loader_loads, count_operation, count_tasks


async def load_doubles(keys: list[int]) -> list[int]:
    return [k * 2 for k in keys]


@strawberry.type
class Item:
    id: int  # plain attribute

    @strawberry.field
    def label(self) -> str:  # sync resolver
        return f"item {self.id}"

    @strawberry.field
    async def double(self, info: strawberry.Info) -> int:  # async resolver through a DataLoader
        return await info.context["doubles"].load(self.id)


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(id=i) for i in range(3)]


SCHEMA = strawberry.Schema(query=Query)
QUERY = "{ items { id label double } }"


async def execute() -> dict:
    result = await SCHEMA.execute(QUERY, context_value={"doubles": DataLoader(load_doubles)})
    assert result.errors is None
    return result.data


async def test_fields_and_resolvers_of_one_operation_are_counted_then_the_schema_is_restored() -> None:
    extensions = SCHEMA.extensions
    with count_fields(SCHEMA) as counts:
        data = await execute()

    assert data == {"items": [{"id": i, "label": f"item {i}", "double": 2 * i} for i in range(3)]}
    assert counts.fields == 1 + 3 * 3  # items, then id/label/double of each item
    assert counts.resolvers == 1 + 3 + 3  # items, label x3, double x3 (id is a plain attribute)
    assert counts.async_resolvers == 3
    assert counts.resolvers_by_field == {"Query.items": 1, "Item.label": 3, "Item.double": 3}
    assert SCHEMA.extensions == extensions
    with count_fields(SCHEMA) as later:
        pass
    await execute()
    assert later.fields == 0


async def test_tasks_created_on_the_loop_are_counted_and_an_existing_factory_still_runs() -> None:
    loop = asyncio.get_running_loop()
    seen: list[str] = []

    def outer_factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):
        seen.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def work() -> int:
        return 1

    loop.set_task_factory(outer_factory)
    try:
        with count_tasks() as counts:
            assert sum(await asyncio.gather(*(asyncio.create_task(work()) for _ in range(3)))) == 3
        assert counts.tasks == 3
        assert counts.tasks_by_coroutine == {
            "test_tasks_created_on_the_loop_are_counted_and_an_existing_factory_still_runs.<locals>.work": 3
        }
        assert len(seen) == 3  # chained, not replaced
        assert loop.get_task_factory() is outer_factory
    finally:
        loop.set_task_factory(None)


async def test_dataloader_loads_are_counted_per_loader_in_nested_blocks_and_the_method_restored() -> None:
    original = DataLoader.load
    loader = DataLoader(load_doubles)
    with count_loader_loads() as outer:
        await loader.load(1)
        with count_loader_loads() as inner:
            assert await loader.load_many([2, 3, 4]) == [4, 6, 8]
        await loader.load(1)  # cached in the loader, but still a call to load()

    assert inner.loader_loads == 3
    assert outer.loader_loads == 5
    assert outer.loads_by_loader == {"load_doubles": 5}
    assert DataLoader.load is original


async def test_garbage_collections_are_counted_with_their_time() -> None:
    callbacks = list(gc.callbacks)
    with count_gc() as counts:
        gc.collect()
        gc.collect(0)

    assert counts.gc_collections[2] >= 1 and counts.gc_collections[0] >= 1
    assert counts.gc_seconds > 0
    assert gc.callbacks == callbacks


async def test_count_operation_gathers_every_counter_for_one_execution() -> None:
    with count_operation(SCHEMA) as counts:
        await execute()

    assert counts.fields == 10 and counts.resolvers == 7
    assert counts.loader_loads == 3
    assert counts.tasks >= 1  # at least the loader's batch dispatch
    assert counts.tasks_by_coroutine["dispatch_batch"] == 1
    assert "tasks" in counts.summary()
