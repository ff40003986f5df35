"""Value completion (graphql/completion.py) serves and fails exactly as graphql-core's own, each field's resolve info
holds what Strawberry's holds, fields without code serve what Strawberry's resolver serves, and a finished operation's
objects are freed without the cycle collector (graphql/live/execution.py).

The first tests run one schema of every completion case (non-null and nullable leaves of each kind, a leaf whose
coercion fails, null in non-null fields and list items, errors raised by resolvers, lists, objects, an interface)
through graphql-core's executor and through one with `LeanCompletion`, and compare data and errors, messages and
paths included. Never starts a server.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from enum import Enum
from types import SimpleNamespace
from typing import Any

import strawberry
from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    parse,
)
from graphql.execution import Executor, execute
from graphql.pyutils import Path
from strawberry.directive import DirectiveLocation, DirectiveValue
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from delivery_gateway.graphql.completion import LeanCompletion, LeanResolveInfo, serve_attributes
from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.settings import Settings
from tests.graphql.gql_support import FULL


class Color(Enum):
    RED = "red"


class LeanExecutor(LeanCompletion, Executor):
    pass


def _value(_source: Any, _info: Any, value: Any = None) -> Any:
    return VALUES[value]


def _raise(_source: Any, _info: Any) -> Any:
    raise ValueError("resolver failed")


VALUES: dict[str, Any] = {
    "text": "plain text",
    "number": 7,
    "float": 2.5,
    "true": True,
    "none": None,
    "object": object(),  # no String can represent it
    "color": Color.RED,
    "raw_color": "red",
    "unknown_color": "blue",
    "texts": ["a", None, "c"],
    "big": 2**40,
    "nested": [[1, 2], [3]],
}

NAMED = GraphQLInterfaceType("Named", {"name": GraphQLField(GraphQLString)})
PERSON = GraphQLObjectType(
    "Person",
    {"name": GraphQLField(GraphQLString), "age": GraphQLField(GraphQLNonNull(GraphQLInt))},
    interfaces=[NAMED],
    is_type_of=lambda value, _info: isinstance(value, dict),
)
COLOR = GraphQLEnumType("Color", Color)
ARG = {"value": GraphQLArgument(GraphQLString)}


def _schema() -> GraphQLSchema:
    def field(type_: Any) -> GraphQLField:
        return GraphQLField(type_, args=ARG, resolve=_value)

    return GraphQLSchema(
        GraphQLObjectType(
            "Query",
            {
                "string": field(GraphQLString),
                "requiredString": field(GraphQLNonNull(GraphQLString)),
                "int": field(GraphQLInt),
                "requiredInt": field(GraphQLNonNull(GraphQLInt)),
                "float": field(GraphQLFloat),
                "boolean": field(GraphQLBoolean),
                "requiredBoolean": field(GraphQLNonNull(GraphQLBoolean)),
                "id": field(GraphQLNonNull(GraphQLID)),
                "color": field(COLOR),
                "requiredColor": field(GraphQLNonNull(COLOR)),
                "strings": field(GraphQLList(GraphQLString)),
                "requiredStrings": field(GraphQLList(GraphQLNonNull(GraphQLString))),
                "nested": field(GraphQLNonNull(GraphQLList(GraphQLNonNull(GraphQLList(GraphQLInt))))),
                "failing": GraphQLField(GraphQLString, resolve=_raise),
                "requiredFailing": GraphQLField(GraphQLNonNull(GraphQLString), resolve=_raise),
                "person": GraphQLField(PERSON, resolve=lambda *_: {"name": "Ada", "age": 36}),
                "ageless": GraphQLField(PERSON, resolve=lambda *_: {"name": "Bob", "age": None}),
                "named": GraphQLField(GraphQLNonNull(NAMED), resolve=lambda *_: {"name": "Cy", "age": 1}),
                "people": GraphQLField(
                    GraphQLList(GraphQLNonNull(PERSON)), resolve=lambda *_: [{"name": "D", "age": 2}, None]
                ),
            },
        ),
        types=[PERSON],
    )


SCHEMA = _schema()
QUERIES = [
    '{ string(value: "text") requiredString(value: "text") int(value: "number") requiredInt(value: "number") }',
    '{ string(value: "number") a: string(value: "float") b: string(value: "true") float(value: "number") }',
    '{ boolean(value: "true") requiredBoolean(value: "true") c: boolean(value: "number") id(value: "number") }',
    '{ color(value: "color") requiredColor(value: "raw_color") strings(value: "texts") nested(value: "nested") }',
    '{ string(value: "none") int(value: "none") color(value: "none") strings(value: "none") }',
    '{ requiredString(value: "none") }',
    '{ requiredBoolean(value: "none") string(value: "text") }',
    '{ requiredStrings(value: "texts") }',
    '{ string(value: "object") }',
    '{ requiredString(value: "object") }',
    '{ int(value: "big") }',
    '{ requiredInt(value: "big") }',
    '{ color(value: "unknown_color") }',
    '{ requiredColor(value: "unknown_color") }',
    "{ failing }",
    "{ requiredFailing }",
    "{ person { name age } ageless { name age } }",
    "{ named { name ... on Person { age } } }",
    "{ people { name } }",
]


def _run(query: str, executor: type[Executor] | None) -> Any:
    result = execute(SCHEMA, parse(query), executor_class=executor)
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or ())  # type: ignore[union-attr]
    return result.data, errors  # type: ignore[union-attr]


def test_every_completion_case_serves_and_fails_as_graphql_core() -> None:
    failing = 0
    for query in QUERIES:
        ours, theirs = _run(query, LeanExecutor), _run(query, None)
        assert ours == theirs, query
        failing += bool(theirs[1])
    assert failing >= 10  # the comparison covers the error paths, not only successes


def test_strings_and_booleans_are_served_as_they_are_and_other_values_coerced() -> None:
    data, errors = _run(QUERIES[1], LeanExecutor)
    assert errors == [] and data == {"string": "7", "a": "2.5", "b": "true", "float": 7.0}
    data, errors = _run(QUERIES[5], LeanExecutor)
    assert data is None and errors == [
        ("Cannot return null for non-nullable field Query.requiredString.", ("requiredString",))
    ]


async def test_a_finished_operation_is_freed_by_reference_counting() -> None:
    """The request's context (and the loaders, futures and executor state it goes with) is gone as soon as the
    result is dropped, with the cycle collector off: graphql-core's executor holds its resolvers' helpers, which held
    the executor back."""
    services = GatewayServices(settings=Settings(_env_file=None), upstream=None)  # type: ignore[arg-type]
    schema = build_schema(services.settings)
    query = "query Probe { __typename }"
    await schema.execute(query, context_value=RequestContext(services, FULL))  # parsed and validated once
    gc.collect()
    gc.disable()
    try:
        context = RequestContext(services, FULL)
        context.loaders  # noqa: B018 (made, as a resolver reading anything would)
        alive = weakref.ref(context)
        result = await schema.execute(query, context_value=context)
        assert result.errors is None and result.data == {"__typename": "Query"}
        del context, result
        assert alive() is None
    finally:
        gc.enable()


def test_resolve_info_holds_what_strawberrys_holds() -> None:
    executor = SimpleNamespace(
        **{name: object() for name in ("schema", "fragment_definitions", "root_value", "operation", "context_value")},
        variable_values=SimpleNamespace(coerced={"sid": "CH1"}),
        is_awaitable=object(),
        abort_signal=None,
        async_helpers=object(),
        operation_extensions={"x": 1},
    )
    node = parse("{ string }").definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    field = SCHEMA.query_type.fields["string"]
    args = (field, [node], SCHEMA.query_type, Path(None, "string", "Query"))
    ours = LeanResolveInfo.build_resolve_info(executor, *args)  # type: ignore[arg-type]
    theirs = StrawberryGraphQLCoreExecutionContext.build_resolve_info(executor, *args)  # type: ignore[arg-type]
    assert type(ours) is type(theirs) and ours == theirs and ours._asdict() == theirs._asdict()
    assert ours.field_name == "string" and ours.variable_values == {"sid": "CH1"}


@strawberry.type
class Item:
    name: str
    size: int | None = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class ItemQuery:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a", size=1), Item(name="b")]

    @strawberry.field
    def broken(self) -> Item | None:
        return object()  # type: ignore[return-value]  # has no `name`: the field fails as with Strawberry's resolver


ITEMS_QUERY = "{ items { name size shout } broken { name } }"


def test_fields_without_code_are_read_in_one_call_and_serve_what_strawberry_serves() -> None:
    strawberrys = strawberry.Schema(query=ItemQuery).execute_sync(ITEMS_QUERY)
    schema = strawberry.Schema(query=ItemQuery)
    assert serve_attributes(schema) == 2  # Item.name and Item.size; not shout, items or broken (they have code)
    ours = schema.execute_sync(ITEMS_QUERY)
    assert (
        ours.data
        == strawberrys.data
        == {
            "items": [{"name": "a", "size": 1, "shout": "A"}, {"name": "b", "size": None, "shout": "B"}],
            "broken": None,
        }
    )
    assert [(e.message, e.path) for e in ours.errors or ()] == [(e.message, e.path) for e in strawberrys.errors or ()]
    assert ours.errors and "has no attribute 'name'" in ours.errors[0].message
    fields = schema._schema.type_map["Item"].fields  # type: ignore[union-attr]
    assert fields["name"].resolve._is_default and fields["name"].resolve.__name__ == "resolve"
    assert fields["shout"].resolve.__name__ != "resolve"


def test_a_schema_with_its_own_default_resolver_keeps_strawberrys() -> None:
    schema = strawberry.Schema(query=ItemQuery, config=StrawberryConfig(default_resolver=getattr_or_none))
    assert serve_attributes(schema) == 0


def test_the_gateway_schema_serves_its_plain_fields_in_one_call() -> None:
    schema = build_schema(Settings(_env_file=None))
    fields = schema._schema.type_map["DeliveryReceipt"].fields  # type: ignore[union-attr]
    assert fields["sid"].resolve.__name__ == "resolve" and fields["sid"].resolve._is_default
    assert serve_attributes(schema) == 0  # already done by build_schema


def getattr_or_none(source: object, name: str) -> object:
    return getattr(source, name, None)


# Plans (graphql/completion.py): objects whose selection reads only plain attributes, completed in one pass; any value
# a plan does not complete itself (an error, an awaitable, a null in a non-null field, a leaf its coercion refuses, a
# list that is not a list) leaves the object to graphql-core, so data and errors are Strawberry's own.


class Tone(Enum):
    LOUD = "loud"
    QUIET = "quiet"


ToneType = strawberry.enum(Tone)


@strawberry.type
class Leaf:
    name: str
    count: int | None = None
    tone: ToneType | None = None  # type: ignore[valid-type]
    tags: list[str] = strawberry.field(default_factory=list)


@strawberry.type
class Box:
    title: str
    leaf: Leaf | None = None
    leaves: list[Leaf] = strawberry.field(default_factory=list)
    maybe: list[Leaf | None] | None = None
    required: Leaf = strawberry.field(default_factory=lambda: Leaf(name="r"))

    @strawberry.field
    def shout(self) -> str:
        return self.title.upper()


class _Later:
    """An awaitable value (as a `Deferred` is), made afresh for each execution."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return self.value


def _later(value: Any) -> Any:
    return _Later(value)


def _boxes() -> dict[str, Any]:
    """Named cases: each box holds one kind of value the plan must leave to graphql-core (or complete itself)."""

    def box(**kwargs: Any) -> Box:
        return Box(title=kwargs.pop("title", "t"), **kwargs)

    return {
        "plain": box(leaf=Leaf(name="a", count=1, tone=Tone.LOUD, tags=["x", "y"]), leaves=[Leaf(name="b")]),
        "error_leaf": box(leaf=Leaf(name=ValueError("no name"))),  # type: ignore[arg-type]
        "error_object": box(leaf=ValueError("no leaf")),  # type: ignore[arg-type]
        "error_in_list": box(leaves=[Leaf(name="c"), ValueError("one item")]),  # type: ignore[list-item]
        "null_non_null": box(leaf=Leaf(name=None)),  # type: ignore[arg-type]
        "null_required_object": box(required=None),  # type: ignore[arg-type]
        "null_list_item": box(leaves=[Leaf(name="d"), None], maybe=[None, Leaf(name="e")]),  # type: ignore[list-item]
        "awaitable_leaf": box(leaf=Leaf(name=_later("late"), count=_later(3))),  # type: ignore[arg-type]
        "awaitable_object": box(leaf=_later(Leaf(name="f", tone=Tone.QUIET))),  # type: ignore[arg-type]
        "awaitable_list": box(leaves=_later([Leaf(name="g")])),  # type: ignore[arg-type]
        "unknown_enum": box(leaf=Leaf(name="h", tone="purple")),  # type: ignore[arg-type]
        "bad_int": box(leaf=Leaf(name="i", count="many")),  # type: ignore[arg-type]
        "not_a_list": box(leaf=Leaf(name="j", tags="k")),  # type: ignore[arg-type]
        "raw_enum_value": box(leaf=Leaf(name="l", tone="loud")),  # type: ignore[arg-type]
        "coerced_leaves": box(title=5, leaf=Leaf(name=True, count=2.0)),  # type: ignore[arg-type]
    }


@strawberry.type
class BoxQuery:
    @strawberry.field
    def box(self, case: str) -> Box | None:
        return _boxes()[case]

    @strawberry.field
    def boxes(self, cases: list[str]) -> list[Box]:
        return [_boxes()[case] for case in cases]


class PlannedExecutor(LeanCompletion, LeanResolveInfo):
    fields_executed = 0

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        PlannedExecutor.fields_executed += 1
        return super().execute_field(*args, **kwargs)


BOX_SELECTION = (
    "title leaf { name count tone tags __typename } leaves { name } maybe { name } required { name } "
    "alias: leaf { n: name }"
)


async def _box_results(query: str, variables: dict[str, Any] | None = None) -> tuple[Any, Any, int]:
    theirs = await strawberry.Schema(query=BoxQuery).execute(query, variable_values=variables)
    schema = strawberry.Schema(query=BoxQuery, execution_context_class=PlannedExecutor)
    serve_attributes(schema)
    PlannedExecutor.fields_executed = 0
    ours = await schema.execute(query, variable_values=variables)

    def errors(result: Any) -> list[tuple[str, tuple[Any, ...]]]:
        return sorted((e.message, tuple(e.path or ())) for e in result.errors or ())

    assert ours.data == theirs.data, query
    assert errors(ours) == errors(theirs), query
    return ours.data, errors(ours), PlannedExecutor.fields_executed


async def test_planned_objects_serve_and_fail_as_strawberry() -> None:
    failing = 0
    for case in _boxes():
        _data, errors, _ = await _box_results(f'{{ box(case: "{case}") {{ {BOX_SELECTION} }} }}')
        failing += bool(errors)
    assert failing >= 8  # errors, nulls in non-null fields, refused leaves: each compared, path and message
    await _box_results(f'{{ boxes(cases: ["plain", "error_leaf", "plain", "null_list_item"]) {{ {BOX_SELECTION} }} }}')


async def test_a_plain_object_is_completed_without_executing_its_fields_one_by_one() -> None:
    data, errors, executed = await _box_results(f'{{ box(case: "plain") {{ {BOX_SELECTION} }} }}')
    assert errors == [] and executed == 1  # Query.box alone; everything below it in one plan
    assert data["box"]["leaf"] == {"name": "a", "count": 1, "tone": "LOUD", "tags": ["x", "y"], "__typename": "Leaf"}
    # A field with code in the selection: that object is completed field by field.
    _, _, executed = await _box_results('{ box(case: "plain") { title shout } }')
    assert executed == 3
    query = 'query Q($on: Boolean!) { box(case: "plain") { title leaf @include(if: $on) { name } } }'
    for on in (True, False):
        _, errors, executed = await _box_results(query, {"on": on})
        assert errors == [] and executed == 1  # @include is applied before the plan is made
    # An error below: the object is completed by graphql-core, its other plain objects still by their plans.
    _, errors, executed = await _box_results(f'{{ box(case: "error_leaf") {{ {BOX_SELECTION} }} }}')
    assert errors == [("no name", ("box", "alias", "n")), ("no name", ("box", "leaf", "name"))]
    assert 1 < executed < 16


@strawberry.directive(locations=[DirectiveLocation.FIELD])
def shout(value: DirectiveValue[str]) -> str:
    return value.upper()


class CountResolves(SchemaExtension):
    resolved = 0

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        CountResolves.resolved += 1
        return _next(root, info, *args, **kwargs)


@strawberry.type
class Checked:
    name: str

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, cls)


@strawberry.type
class GuardedQuery:
    @strawberry.field
    def box(self) -> Box:
        return _boxes()["plain"]

    @strawberry.field
    def checked(self) -> Checked | None:
        return SimpleNamespace(name="not a Checked")  # type: ignore[return-value]


async def test_plans_leave_directives_resolve_hooks_and_type_checks_to_graphql_core() -> None:
    plain = "{ box { title leaf { name count tags } } }"
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["{ checked { name } }", plain]),  # an is_type_of that refuses the value
        ({"extensions": [CountResolves]}, [plain]),  # a resolve hook sees every field
        # A directive on a field the plan would read (Strawberry runs directives as a resolve hook).
        (
            {"directives": [shout]},
            [
                "{ box { title leaf { name @shout count } } }",
                "{ box { leaf { ...L } } } fragment L on Leaf { name @shout }",
            ],
        ),
    ]
    for options, queries in cases:
        stock = strawberry.Schema(query=GuardedQuery, **options)
        ours = strawberry.Schema(query=GuardedQuery, execution_context_class=PlannedExecutor, **options)
        serve_attributes(ours)
        for query in queries:
            CountResolves.resolved = 0
            theirs = await stock.execute(query)
            theirs_resolved, CountResolves.resolved = CountResolves.resolved, 0
            result = await ours.execute(query)
            assert result.data == theirs.data, query
            assert [e.message for e in result.errors or ()] == [e.message for e in theirs.errors or ()], query
            assert CountResolves.resolved == theirs_resolved, query
            if options.get("extensions"):
                assert theirs_resolved == 6
            if "@shout" in query:
                assert theirs.data["box"]["leaf"]["name"] == "A"
            if "checked" in query:
                assert theirs.errors and theirs.data == {"checked": None}
