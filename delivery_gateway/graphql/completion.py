"""Field execution with less per-field work: graphql-core's `complete_value`, Strawberry's `build_resolve_info` and
its resolver of plain attributes, without the calls that a chat screen repeats for each of its ~2,700 fields.

graphql-core completes a non-null field by calling itself again for the inner type (a second frame and a second
round of type checks per non-null field), completes every leaf through `complete_leaf_value` (one more frame), and
coerces every String and Boolean through a Python function that returns a `str` or `bool` unchanged. A chat screen
has about 1,800 non-null fields and 2,000 leaves. Here a non-null wrapper is unwrapped in the same frame, a leaf is
coerced in it, and a value whose output coercion is the identity (a `str` for a String, a `bool` for a Boolean:
graphql-core's own `serialize_string` and `serialize_boolean` return them as they are) is served as it is. Lists,
objects and abstract types go to graphql-core's own code, unchanged.

Each field's resolve info is Strawberry's own named tuple, built by `tuple.__new__` rather than through the named
tuple's constructor (a Python function: one frame per field).

A field without code (all but 3 of a chat screen's) is read by Strawberry through three Python calls
(`_get_basic_result`, `StrawberryField.get_result`, the `python_name` property) ending in `getattr(source, name)`;
`serve_attributes` gives each such field of a built schema a resolver that makes that `getattr` in one call, marked
as Strawberry marks its own (`_is_default`). Fields with a resolver, extensions or another default resolver keep
Strawberry's.

What is served, and every error (messages included), is graphql-core's: the checks run in the same order; the
resolve info holds what Strawberry's holds.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from graphql.execution import Executor
from graphql.pyutils import Path, Undefined, inspect
from graphql.type.scalars import serialize_boolean, serialize_string
from strawberry import Schema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, _OperationContextAwareGraphQLResolveInfo
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

_LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)
_new_tuple = tuple.__new__


def _null_error(info: GraphQLResolveInfo) -> TypeError:
    return TypeError(f"Cannot return null for non-nullable field {info.parent_type}.{info.field_name}.")


class LeanCompletion(Executor):
    """An executor mixin (put before graphql-core's executor in the bases) completing values as described in the
    module docstring."""

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if isinstance(result, Exception):
            raise result
        non_null = return_type.__class__ is GraphQLNonNull
        named = return_type.of_type if non_null else return_type  # type: ignore[union-attr]
        if result is None or result is Undefined:
            if non_null:
                raise _null_error(info)
            return None
        if isinstance(named, _LEAF_TYPES):
            coerce = named.coerce_output_value
            cls = result.__class__
            if (cls is str and coerce is serialize_string) or (cls is bool and coerce is serialize_boolean):
                return result
            coerced = coerce(result)
            if coerced is Undefined or coerced is None:
                msg = (
                    f"Expected `{inspect(named)}.coerce_output_value("
                    f"{inspect(result)})` to return non-nullable value, returned:"
                    f" {inspect(coerced)}"
                )
                raise TypeError(msg)
            return coerced
        completed = super().complete_value(named, field_details_list, info, path, result, position_context)
        if non_null and completed is None:
            raise _null_error(info)
        return completed


class LeanResolveInfo(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor with each field's resolve info built as described in the module docstring."""

    def build_resolve_info(
        self,
        field_def: GraphQLField,
        field_nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
        path: Path,
    ) -> GraphQLResolveInfo:
        return _new_tuple(  # type: ignore[return-value]  # the fields and order of Strawberry's build_resolve_info
            _OperationContextAwareGraphQLResolveInfo,
            (
                field_nodes[0].name.value,
                field_nodes,
                field_def.type,
                parent_type,
                path,
                self.schema,
                self.fragment_definitions,
                self.root_value,
                self.operation,
                self.variable_values.coerced,
                self.context_value,
                self.is_awaitable,
                self.abort_signal,
                self.async_helpers,
                self.operation_extensions,
            ),
        )


def _attribute_resolver(name: str) -> Any:
    def resolve(source: Any, _info: Any) -> Any:
        return getattr(source, name)

    resolve._is_default = True  # type: ignore[attr-defined]  # a field without code, as Strawberry marks its own
    return resolve


def serve_attributes(schema: Schema) -> int:
    """Give every field of `schema` that Strawberry serves as a plain attribute a one-call resolver (see the module
    docstring); returns how many fields got one."""
    served = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for graphql_field in graphql_type.fields.values():
            field = (graphql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            resolve = graphql_field.resolve
            if (
                isinstance(field, StrawberryField)
                and getattr(resolve, "__name__", None) == "_get_basic_result"
                and getattr(resolve, "_is_default", False)
                and field.is_basic_field
                and field.default_resolver is getattr
                and field.python_name
            ):
                graphql_field.resolve = _attribute_resolver(field.python_name)
                served += 1
    return served
