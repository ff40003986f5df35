"""Enum values out of execution in one dict lookup: a response names hundreds of enum values (each receipt's
status and channel, each recipient's status, source and channel, each message's ticks and delivery amounts).

Strawberry's enum type finds the GraphQL name of a Python enum member by scanning the enum's values and comparing
each one's `.value` (a Python property) with the member's: several attribute reads per value, per enum value
served. This installs, on each enum type of a built schema, an output coercion that looks the member up in a
dict built once ({member: GraphQL name}) and hands anything else (a raw value, an unknown one) to Strawberry's
own coercion, so what is served and what fails are unchanged.

Never changes input coercion (arguments and variables still go through Strawberry) and never touches a schema
that is not Strawberry's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strawberry import Schema
from strawberry.schema.schema_converter import CustomGraphQLEnumType


def _lookup_output(enum_type: CustomGraphQLEnumType) -> Callable[[Any], str]:
    names = {enum_type.wrapped_cls(value.value): name for name, value in enum_type.values.items()}
    fallback = enum_type.coerce_output_value  # Strawberry's (bound before the instance attribute shadows it)

    def coerce_output_value(value: Any) -> str:
        try:
            return names[value]
        except (KeyError, TypeError):  # not a member (a raw value, an unknown one) or unhashable
            return fallback(value)

    return coerce_output_value


def install_enum_output(schema: Schema) -> None:
    """Give every enum type of `schema` the dict lookup (graphql-core calls `coerce_output_value`; `serialize`
    is its older name, kept in step)."""
    for graphql_type in schema._schema.type_map.values():
        if isinstance(graphql_type, CustomGraphQLEnumType):
            coerce = _lookup_output(graphql_type)
            graphql_type.coerce_output_value = coerce  # type: ignore[method-assign]
            graphql_type.serialize = coerce  # type: ignore[method-assign]
