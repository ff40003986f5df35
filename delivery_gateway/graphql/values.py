"""Values of plain-attribute fields: computed ahead of execution, an error kept for one field of one object, or
work deferred until (and unless) the field is read.

graphql-core resolves a field without a resolver by reading the attribute, then completes the value: an `Exception`
instance there is raised as that field's error (located at that field only, through the one error path), and an
awaitable there is awaited. So a type can carry every value as a plain attribute (no resolver call, no task) and
still fail one field of one object, or load lazily when it was built outside a page that loaded it in one step.

Never starts work nobody reads: a `Deferred` calls its function only when graphql-core awaits it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Deferred(Generic[T]):
    """An awaitable that starts `start()` only when awaited (each await starts it again: loaders dedupe)."""

    __slots__ = ("_start",)

    def __init__(self, start: Callable[[], Awaitable[T]]) -> None:
        self._start = start

    def __await__(self) -> Generator[Any, None, T]:
        return self._start().__await__()


def attribute(value: T | Exception | Deferred[T]) -> T:
    """`value` as its field's declared type, for the type checker: graphql-core raises an `Exception` as the
    field's error and awaits a `Deferred` (module docstring)."""
    return cast(T, value)
