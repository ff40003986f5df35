"""Field execution with less per-field work: graphql-core's `complete_value`, Strawberry's `build_resolve_info` and
its resolver of plain attributes, without the calls that a chat screen repeats for each of its ~2,700 fields.

graphql-core completes a non-null field by calling itself again for the inner type (a second frame and a second
round of type checks per non-null field), completes every leaf through `complete_leaf_value` (one more frame), and
coerces every String and Boolean through a Python function that returns a `str` or `bool` unchanged. A chat screen
has about 1,800 non-null fields and 2,000 leaves. Here a non-null wrapper is unwrapped in the same frame, a leaf is
coerced in it, and a value whose output coercion is the identity (a `str` for a String, a `bool` for a Boolean:
graphql-core's own `serialize_string` and `serialize_boolean` return them as they are) is served as it is. Lists,
objects and abstract types go to graphql-core's own code, unchanged, but for the plans below.

Each field's resolve info is Strawberry's own named tuple, built by `tuple.__new__` rather than through the named
tuple's constructor (a Python function: one frame per field).

A field without code (all but 3 of a chat screen's) is read by Strawberry through three Python calls
(`_get_basic_result`, `StrawberryField.get_result`, the `python_name` property) ending in `getattr(source, name)`;
`serve_attributes` gives each such field of a built schema a resolver that makes that `getattr` in one call, marked
as Strawberry marks its own (`_is_default`). Fields with a resolver, extensions or another default resolver keep
Strawberry's.

An object whose selection reads only such fields (no arguments, no directives, no middleware, no `is_type_of`), down
to its leaves, is completed by a plan instead (`_Planner`): built once per request for each (type, selection), it
reads each attribute and completes each value in one pass, with no resolve info, path or field frame per field. Plain
values only: the first value that is an exception, an awaitable, a null where the type says non-null, a leaf its
coercion refuses or a list that is not a list abandons the plan for that object, which graphql-core then completes
field by field as before (reading the same attributes again, which have no side effects), so every error, its path
and its message are graphql-core's. A chat screen's page (or, on a cold read, each message as its Receipts list
arrives) is one plan.

What is served, and every error (messages included), is graphql-core's: the checks run in the same order; the
resolve info holds what Strawberry's holds.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
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

from delivery_gateway.graphql.awaitable import NEVER_AWAITABLE, is_awaitable

_LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)
_new_tuple = tuple.__new__


def _null_error(info: GraphQLResolveInfo) -> TypeError:
    return TypeError(f"Cannot return null for non-nullable field {info.parent_type}.{info.field_name}.")


class _Abandon(Exception):
    """A value a plan does not complete itself (module docstring): graphql-core completes the object instead."""


Complete = Callable[[Any], Any]
# Classes whose instances are neither exceptions nor awaitable (decided by their type, graphql/awaitable.py).
_PLAIN: set[type] = {str, bool, int, float, list, tuple, dict}


def _plain(value: Any) -> None:
    """Abandons the plan unless `value` is a plain value (no exception, nothing to await)."""
    cls = value.__class__
    if cls in _PLAIN:
        return
    if isinstance(value, BaseException) or is_awaitable(value):
        raise _Abandon
    if cls in NEVER_AWAITABLE:  # decided by its type: every instance is plain
        _PLAIN.add(cls)


def _leaf(named: GraphQLScalarType | GraphQLEnumType, non_null: bool) -> Complete:
    coerce = named.coerce_output_value
    same: type | None = str if coerce is serialize_string else bool if coerce is serialize_boolean else None

    def complete(value: Any) -> Any:
        if value.__class__ is same:
            return value
        if value is None or value is Undefined:
            if non_null:
                raise _Abandon
            return None
        _plain(value)
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            raise _Abandon
        return coerced

    return complete


def _list(item: Complete, non_null: bool) -> Complete:
    def complete(value: Any) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise _Abandon
            return None
        if not isinstance(value, list | tuple):
            raise _Abandon
        return [item(v) for v in value]

    return complete


def _object(fields: list[tuple[str, Callable[[Any], Any], Complete]], non_null: bool) -> Complete:
    def complete(value: Any) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise _Abandon
            return None
        _plain(value)
        return {name: complete_field(read(value)) for name, read, complete_field in fields}

    return complete


Plans = dict[tuple[Any, int], tuple[Any, "Complete | None"]]


def _plan(executor: Executor, plans: Plans, return_type: GraphQLOutputType, field_details_list: Any) -> Complete | None:
    """The plan completing a `return_type` value selected by `field_details_list` (module docstring), or None where
    graphql-core must complete it field by field. One per (type, selection) and execution, kept with the selection's
    list so that its id cannot be reused while the plan is (as graphql-core's own `collect_subfields` memo does)."""
    key = (return_type, id(field_details_list))
    found = plans.get(key)
    if found is not None:
        return found[1]
    complete = _completion(executor, return_type, field_details_list)
    plans[key] = (field_details_list, complete)
    return complete


def _completion(executor: Executor, return_type: GraphQLOutputType, field_details_list: Any) -> Complete | None:
    non_null = return_type.__class__ is GraphQLNonNull
    named: Any = return_type.of_type if non_null else return_type  # type: ignore[union-attr]
    if isinstance(named, GraphQLList):
        item = _completion(executor, named.of_type, field_details_list)
        return _list(item, non_null) if item is not None else None
    if isinstance(named, _LEAF_TYPES):
        return _leaf(named, non_null)
    if isinstance(named, GraphQLObjectType):
        fields = _fields(executor, named, field_details_list)
        return _object(fields, non_null) if fields is not None else None
    return None  # interfaces and unions: graphql-core resolves the runtime type


def _fields(
    executor: Executor, parent: GraphQLObjectType, field_details_list: Any
) -> list[tuple[str, Callable[[Any], Any], Complete]] | None:
    if parent.is_type_of is not None:
        return None
    middleware = executor.middleware_manager
    grouped, defer_usages, forbidden = executor.collect_subfields(parent, field_details_list)
    if defer_usages or forbidden:
        return None
    fields: list[tuple[str, Callable[[Any], Any], Complete]] = []
    for response_name, details in grouped.items():
        if any(d.defer_usage is not None or _directed(d.node) for d in details):
            return None
        node = details[0].node
        name = node.name.value
        if name == "__typename":
            fields.append((response_name, _constant(parent.name), _identity))
            continue
        field_def = executor.schema.get_field(parent, name)
        if field_def is None:
            continue  # graphql-core leaves it out of the answer
        resolve = field_def.resolve
        attribute = getattr(resolve, "_attribute", None)
        if resolve is None or attribute is None or field_def.args or node.arguments:
            return None
        if middleware is not None and middleware.get_field_resolver(resolve) is not resolve:
            return None  # a middleware (a schema extension's `resolve`) sees every field: graphql-core runs them
        complete = _completion(executor, field_def.type, details)
        if complete is None:
            return None
        fields.append((response_name, attrgetter(attribute), complete))
    return fields


_COLLECTED = frozenset({"include", "skip"})  # applied by collect_subfields already


def _directed(node: FieldNode) -> bool:
    """Whether a directive other than @include and @skip is on the field (graphql-core must see it)."""
    return any(directive.name.value not in _COLLECTED for directive in node.directives or ())


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _source: value


def _identity(value: Any) -> Any:
    return value


class LeanCompletion(Executor):
    """An executor mixin (put before graphql-core's executor in the bases) completing values as described in the
    module docstring. Plans are kept per executor: a copy (graphql-core's per-event executors) makes its own."""

    _plans: Plans
    _plans_of: int = 0  # id() of the executor `_plans` belongs to (not the executor itself: no reference cycle)

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
        if self._plans_of == id(self):
            plans = self._plans
        else:
            plans = self._plans = {}
            self._plans_of = id(self)
        plan = _plan(self, plans, named, field_details_list)
        if plan is not None:
            try:
                return plan(result)
            except Exception:  # a value the plan leaves to graphql-core (module docstring): it completes the object
                pass
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
    resolve._attribute = name  # type: ignore[attr-defined]  # what a plan reads instead of calling it
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
