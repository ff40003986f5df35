"""Counts what one GraphQL operation costs inside the process: fields, resolvers with code, asyncio tasks,
DataLoader.load calls and garbage collections. For the benchmarks and for tests that pin those counts.

Never changes what it counts: the hooks only count and pass through (a loop task factory, a wrapper around
`DataLoader.load`, a Strawberry schema extension whose `resolve` calls the next resolver, `gc.callbacks`), and
every hook is removed when its block exits. Not imported by the gateway package.

Use it around one operation, inside a running event loop:

    with count_operation(schema) as counts:      # schema: the strawberry.Schema that executes it
        await client.post("/graphql", json=...)
    assert counts.tasks <= 10 and counts.loader_loads == 53

Hooks are process-wide while active (every loader, every task of the running loop, every execution of
`schema`), so count one operation at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLResolveInfo, default_field_resolver
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension

__all__ = [
    "OperationCounts",
    "count_fields",
    "count_gc",
    "count_loader_loads",
    "count_operation",
    "count_tasks",
]


@dataclass
class OperationCounts:
    fields: int = 0  # field executions (every field of every object in the response, lists expanded)
    resolvers: int = 0  # of those, fields whose resolver has code (not a plain attribute read)
    async_resolvers: int = 0  # of those, resolvers that returned an awaitable
    tasks: int = 0  # asyncio tasks created on the running loop
    loader_loads: int = 0  # DataLoader.load calls (load_many counts each key)
    gc_collections: list[int] = field(default_factory=lambda: [0, 0, 0])  # per generation
    gc_seconds: float = 0.0  # time spent inside those collections
    tasks_by_coroutine: Counter[str] = field(default_factory=Counter)
    loads_by_loader: Counter[str] = field(default_factory=Counter)
    resolvers_by_field: Counter[str] = field(default_factory=Counter)  # "Type.field" -> calls (resolvers only)

    def summary(self) -> str:
        gcs = "/".join(str(n) for n in self.gc_collections)
        return (
            f"{self.fields} fields, {self.resolvers} resolvers with code ({self.async_resolvers} async), "
            f"{self.tasks} tasks, {self.loader_loads} DataLoader.load, "
            f"GC gen0/1/2 {gcs} ({self.gc_seconds * 1000:.1f} ms)"
        )


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


# ------------------------------------------------------------------------------------------------------ tasks


@contextlib.contextmanager
def count_tasks(counts: OperationCounts | None = None) -> Iterator[OperationCounts]:
    """Count tasks created on the running loop (a task factory chained in front of any existing one)."""
    counts = counts if counts is not None else OperationCounts()
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        counts.tasks += 1
        counts.tasks_by_coroutine[_name(coro)] += 1
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        yield counts
    finally:
        loop.set_task_factory(previous)


# ------------------------------------------------------------------------------------------------ DataLoader

_load_counters: list[OperationCounts] = []
_original_load: Callable[..., Any] | None = None


def _counting_load(self: DataLoader, key: Any) -> Any:
    label = _name(self.load_fn)
    for counts in _load_counters:
        counts.loader_loads += 1
        counts.loads_by_loader[label] += 1
    return _original_load(self, key)  # type: ignore[misc]


@contextlib.contextmanager
def count_loader_loads(counts: OperationCounts | None = None) -> Iterator[OperationCounts]:
    """Count `DataLoader.load` calls of every Strawberry DataLoader (and subclass) while the block runs."""
    global _original_load
    counts = counts if counts is not None else OperationCounts()
    if not _load_counters:
        _original_load = DataLoader.load
        DataLoader.load = _counting_load  # type: ignore[method-assign]
    _load_counters.append(counts)
    try:
        yield counts
    finally:
        _load_counters.remove(counts)
        if not _load_counters:
            DataLoader.load = _original_load  # type: ignore[method-assign]
            _original_load = None


# ------------------------------------------------------------------------------------------------ fields


def _plain_attribute(resolver: Any) -> bool:
    """Strawberry's resolver for a field without code (`_is_default`), or graphql-core's default resolver."""
    return resolver is default_field_resolver or getattr(resolver, "_is_default", False)


class _FieldCounter(SchemaExtension):
    def __init__(self, counts: OperationCounts) -> None:
        self.counts = counts

    def resolve(self, _next: Callable, root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any) -> Any:
        counts = self.counts
        counts.fields += 1
        result = _next(root, info, *args, **kwargs)
        if not _plain_attribute(_next):
            counts.resolvers += 1
            counts.resolvers_by_field[f"{info.parent_type.name}.{info.field_name}"] += 1
            if inspect.isawaitable(result):
                counts.async_resolvers += 1
        return result


@contextlib.contextmanager
def count_fields(schema: Any, counts: OperationCounts | None = None) -> Iterator[OperationCounts]:
    """Count field executions of `schema` (a strawberry.Schema) through a schema extension added for the block.

    The extension's `resolve` makes graphql-core route every field through middleware, which costs time: count
    in a separate pass from any timing.
    """
    counts = counts if counts is not None else OperationCounts()
    original = schema.extensions
    schema.extensions = (*original, lambda: _FieldCounter(counts))
    try:
        yield counts
    finally:
        schema.extensions = original


# ------------------------------------------------------------------------------------------------ GC


@contextlib.contextmanager
def count_gc(counts: OperationCounts | None = None) -> Iterator[OperationCounts]:
    """Count garbage collections per generation, and the time spent in them, while the block runs."""
    counts = counts if counts is not None else OperationCounts()
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            counts.gc_seconds += time.perf_counter() - started.pop()
            counts.gc_collections[info["generation"]] += 1

    gc.callbacks.append(callback)
    try:
        yield counts
    finally:
        gc.callbacks.remove(callback)


@contextlib.contextmanager
def count_operation(schema: Any = None) -> Iterator[OperationCounts]:
    """Everything above at once (fields only when `schema` is given); call inside a running event loop."""
    with contextlib.ExitStack() as stack:
        counts = OperationCounts()
        stack.enter_context(count_tasks(counts))
        stack.enter_context(count_loader_loads(counts))
        stack.enter_context(count_gc(counts))
        if schema is not None:
            stack.enter_context(count_fields(schema, counts))
        yield counts
