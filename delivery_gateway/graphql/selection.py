"""What an operation selects below a field: which fields of the objects a resolver returns the client asked for,
read from Strawberry's `info.selected_fields` (fragments expanded, variables applied to arguments).

A resolver that loads in one step for a whole list (a messages page: receipts, participants, recipient states) or
starts the next round early (a conversation's participants and first messages page) loads only what the selection
reads, so a query that selects none of it costs no more upstream calls than before.

Never under-approximates: fragments are followed whatever their type condition and `@skip`/`@include` are ignored,
so a field that might be read is reported as selected (at worst a load nobody reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


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


def fields_at(info: Info, path: Iterable[str] = ()) -> list[SelectedField]:
    """`below` the current field, across every occurrence of it in the operation."""
    return below(_fields(info.selected_fields), path)


def selected(info: Info, path: Iterable[str] = ()) -> set[str]:
    """Names (not aliases) of the fields selected at `path` below the current field."""
    return {field.name for field in fields_at(info, path)}
