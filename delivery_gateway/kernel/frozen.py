"""Read-only JSON values: what the in-process resource cache hands to every request that reads an entry.

The `memory://` cache keeps each entry as Python objects (no JSON text to parse on every read), so the same list
or dict reaches every request reading that entry. These subclasses of `list` and `dict` refuse every mutating
method, so no request can change what another one reads; they still compare equal to plain lists and dicts, are
`json.dumps`-able, and copying one (`list(x)`, `dict(x)`, `{**x}`) gives an ordinary, mutable copy.

Pure: never performs I/O.
"""

from __future__ import annotations

from typing import Any, NoReturn, SupportsIndex


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise TypeError("a cached value is read-only: copy it (list(x), dict(x)) to change it")


class FrozenList(list[Any]):
    """A list no method can change (see the module docstring)."""

    __slots__ = ()

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> NoReturn:
        _refuse()

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        _refuse()

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse()

    def __imul__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse()

    def __reduce__(self) -> tuple[Any, ...]:  # copy/pickle rebuild it whole, never item by item
        return (FrozenList, (list(self),))


class FrozenDict(dict[str, Any]):
    """A dict no method can change (see the module docstring)."""

    __slots__ = ()

    pop = popitem = clear = update = setdefault = _refuse

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        _refuse()

    def __delitem__(self, key: str) -> NoReturn:
        _refuse()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse()

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """`value` with every list and dict in it (at any depth) read-only; anything else as it is. A value already
    frozen is returned as is, so freezing twice costs one walk of the containers it finds."""
    if isinstance(value, FrozenList | FrozenDict):
        return value
    if isinstance(value, list | tuple):
        return FrozenList(freeze(item) for item in value)
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    return value
