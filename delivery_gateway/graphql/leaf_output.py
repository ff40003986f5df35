"""Leaf values out of execution without per-value work that the same answer repeats: a chat screen serves hundreds
of enum values (each receipt's status and channel, each recipient's status, source and channel, each message's ticks
and delivery amounts) and a timestamp per recipient.

Enums: Strawberry's enum type finds the GraphQL name of a Python enum member by scanning the enum's values and
comparing each one's `.value` (a Python property), per value served. Each enum type of a built schema gets instead a
dict built once ({member: GraphQL name}, plus {raw value: name}, which graphql-core accepts too) whose C lookup is
the coercion itself; anything else (an unknown value) goes to Strawberry's own coercion, so what is served and what
fails are unchanged (but for an unhashable value, which no field of this API holds: Python's TypeError fails it).

DateTime: `isoformat()` formats each timestamp anew, and the same timestamps (a participant's read horizon, a
message's creation) are served again on every request; their text is kept per (timestamp, UTC offset), a bounded
table.

Never changes input coercion (arguments and variables still go through Strawberry) and never touches a schema that
is not Strawberry's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import GraphQLScalarType
from strawberry import Schema
from strawberry.schema.schema_converter import CustomGraphQLEnumType

DATETIME_TEXTS = 4096  # timestamps whose text is kept; the table starts over when full


class _EnumNames(dict[Any, str]):
    """{member or raw value: GraphQL name}; a value it lacks goes to Strawberry's coercion (which names it or
    raises the GraphQL error an unknown value gets)."""

    __slots__ = ("fallback",)

    def __init__(self, names: dict[Any, str], fallback: Callable[[Any], str]) -> None:
        super().__init__(names)
        self.fallback = fallback

    def __missing__(self, value: Any) -> str:
        return self.fallback(value)


def _enum_output(enum_type: CustomGraphQLEnumType) -> Callable[[Any], str]:
    names: dict[Any, str] = {}
    for name, value in enum_type.values.items():
        names[value.value] = name
        names[enum_type.wrapped_cls(value.value)] = name
    # The bound C lookup itself: no Python frame per value served. Enum fields hold members, which are hashable;
    # an unhashable value (a programming error) fails its field with Python's TypeError instead of Strawberry's.
    return _EnumNames(names, enum_type.coerce_output_value).__getitem__  # Strawberry's, bound before shadowed


def _datetime_output(serialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
    texts: dict[tuple[datetime, Any], Any] = {}

    def coerce_output_value(value: Any) -> Any:
        if type(value) is not datetime:
            return serialize(value)
        # The same instant at another UTC offset is written differently; the offset (a timedelta, or None) is
        # hashable whatever the time zone object is (dateutil's are not).
        key = (value, value.utcoffset())
        text = texts.get(key)
        if text is None:
            if len(texts) >= DATETIME_TEXTS:
                texts.clear()
            text = texts[key] = serialize(value)
        return text

    return coerce_output_value


def install_leaf_output(schema: Schema) -> None:
    """Give every enum type of `schema` its lookup and the DateTime scalar its table (graphql-core calls
    `coerce_output_value`; `serialize` is its older name, kept in step)."""
    for graphql_type in schema._schema.type_map.values():
        if isinstance(graphql_type, CustomGraphQLEnumType):
            enum_coerce = _enum_output(graphql_type)
            graphql_type.coerce_output_value = enum_coerce  # type: ignore[method-assign,assignment]
            graphql_type.serialize = enum_coerce  # type: ignore[method-assign,assignment]
        elif isinstance(graphql_type, GraphQLScalarType) and graphql_type.name == "DateTime":
            scalar_coerce = _datetime_output(graphql_type.coerce_output_value)
            graphql_type.coerce_output_value = scalar_coerce
            graphql_type.serialize = scalar_coerce  # type: ignore[method-assign,assignment]
