"""Whether a resolved value must be awaited, decided once per type: graphql-core asks for every field of a response
(thousands per chat screen), and Strawberry's predicate answers at once only for builtin types; an enum member, a
datetime, a read-only list or one of the schema's objects is looked at with `isinstance` and `hasattr` each time.

A type that is neither a coroutine nor a generator, has no `__await__` and no attribute hook of its own cannot make its
instances awaitable (`await` looks `__await__` up on the type), so it is remembered as never awaitable after its
first value; anything else goes through Strawberry's predicate on every value, as before.

Never remembers an awaitable type (a Deferred value, a coroutine, a future) as not awaitable.
"""

from __future__ import annotations

from types import CoroutineType, GeneratorType, WrapperDescriptorType
from typing import Any

from strawberry.execution import optimized_is_awaitable

NEVER_AWAITABLE: set[type] = {type(None), bool, int, float, str, bytes, list, tuple, dict}


_HOOKS = ("__getattr__", "__getattribute__")


def _decided_by_type(cls: type) -> bool:
    """No `__await__` on the type, and no attribute hook written in Python (those of builtin types, such as
    `datetime`'s or `list`'s, are the generic lookup) that could answer `hasattr(value, "__await__")`."""
    if issubclass(cls, CoroutineType | GeneratorType) or getattr(cls, "__await__", None) is not None:
        return False
    hooks = (vars(k).get(name) for k in cls.__mro__ for name in _HOOKS)
    return all(hook is None or isinstance(hook, WrapperDescriptorType) for hook in hooks)


def is_awaitable(value: Any) -> bool:
    """graphql-core's `is_awaitable` (through Strawberry's), with the answer for plain types remembered per type."""
    cls = type(value)
    if cls in NEVER_AWAITABLE:
        return False
    if optimized_is_awaitable(value):
        return True
    if _decided_by_type(cls):
        NEVER_AWAITABLE.add(cls)
    return False
