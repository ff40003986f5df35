"""What an operation selects below a field: which fields of the objects a resolver returns the client asked for,
read from Strawberry's `info.selected_fields` (fragments expanded, variables applied to arguments).

A resolver that loads in one step for a whole list (a messages page: receipts, participants, recipient states) or
starts the next round early (a conversation's participants and first messages page) loads only what the selection
reads, so a query that selects none of it costs no more upstream calls than before.

Never under-approximates: fragments are followed whatever their type condition and `@skip`/`@include` are ignored,
so a field that might be read is reported as selected (at worst a load nobody reads).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from delivery_gateway.kernel.memo import IdentityMemo


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for node in selections:
        if isinstance(node, SelectedField):
            yield node
        elif isinstance(node, (InlineFragment, FragmentSpread)):
            yield from _fields(node.selections)


def below(fields: Iterable[SelectedField], path: Iterable[str] = ()) -> list[SelectedField]:
    """The fields selected on the objects at `path` below `fields` (`("edges", "node")` under a connection;
    `()` for their own objects)."""
    level = list(fields)
    for name in path:
        level = [child for node in level for child in _fields(node.selections) if child.name == name]
    return [child for node in level for child in _fields(node.selections)]


# Strawberry builds `info.selected_fields` anew from the operation's syntax tree on every call (arguments with the
# variables applied, fragments, directives). The parsed operation is the same object for every request with the same
# text (ParserCache), so what a field selects is kept per (operation, path, variables): built once, then only read.
_SELECTED: IdentityMemo[list[Selection]] = IdentityMemo(1024)


def _selected_fields(info: Info) -> list[Selection]:
    operation = info.operation
    label = (
        tuple(info.path.as_list()),
        json.dumps(info.variable_values, sort_keys=True, separators=(",", ":"), default=repr),
    )
    found = _SELECTED.get(label, operation)
    if found is None:
        found = _SELECTED.put(label, (operation,), info.selected_fields)
    return found


def fields_at(info: Info, path: Iterable[str] = ()) -> list[SelectedField]:
    """`below` the current field, across every occurrence of it in the operation."""
    return below(_fields(_selected_fields(info)), path)


def selected(info: Info, path: Iterable[str] = ()) -> set[str]:
    """Names (not aliases) of the fields selected at `path` below the current field."""
    return {field.name for field in fields_at(info, path)}
