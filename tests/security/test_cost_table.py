"""The cost table against the gateway's real schema: every key names a real field; typical operations fit.

Uses the schema's SDL only (no resolvers run), so it tracks the GraphQL engineer's schema as it changes.
"""

from __future__ import annotations

import pytest
from graphql import GraphQLObjectType, build_schema, parse

from delivery_gateway.limits import DEFAULT_COST_TABLE, CostEstimator, PageSizeError, select_operation
from delivery_gateway.schema import schema_sdl

SCHEMA = build_schema(schema_sdl())
CONV = 'conversation(sid: "CH00000000000000000000000000000000")'


def cost(query: str, variables: dict | None = None) -> int:
    document = parse(query)
    return CostEstimator(SCHEMA).estimate(document, select_operation(document, None), variables)


@pytest.mark.parametrize("key", sorted(DEFAULT_COST_TABLE))
def test_every_cost_key_is_a_field_of_the_schema(key: str) -> None:
    type_name, field = key.split(".")
    graphql_type = SCHEMA.get_type(type_name)
    if graphql_type is None and type_name in ("Mutation", "Subscription"):
        pytest.skip(f"{type_name} not in the schema yet")
    assert isinstance(graphql_type, GraphQLObjectType) and field in graphql_type.fields, key


def test_fields_with_upstream_resolvers_are_priced() -> None:
    """A list or object field under Query/Conversation/Message that is not priced must be deliberate."""
    free_by_design = {
        "Message.participant",  # participants list, once per conversation and request
        "Message.delivery",
        "Message.media",
        "Conversation.id",
    }
    for type_name in ("Query", "Conversation", "Message"):
        for name, field in SCHEMA.get_type(type_name).fields.items():
            key = f"{type_name}.{name}"
            if field.args or key in free_by_design:
                assert key in DEFAULT_COST_TABLE or key in free_by_design, f"{key} takes arguments: price it"


def test_typical_chat_screen_is_cheap() -> None:
    node = "body ticks receipts { status participant { identity } }"
    messages = f"messages(last: 50) {{ edges {{ node {{ {node} }} }} }}"
    query = f"{{ {CONV} {{ sid participants {{ identity }} {messages} }} }}"
    # conversation 1 + participants 1 + messages 2 + 50 x (ticks 1 + receipts 1)
    assert cost(query) == 104


def test_default_page_size_and_variables() -> None:
    edges = "edges { node { receipts { status } } }"
    query = f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ {edges} }} }} }}"
    assert cost(query, {"n": 10}) == 1 + 2 + 10
    assert cost(query, {}) == 1 + 2 + 50
    with pytest.raises(PageSizeError):
        cost(query, {"n": 101})


def test_rollup_grows_with_its_window() -> None:
    assert cost(f"{{ {CONV} {{ rollup {{ messages }} }} }}") == 1 + 2 + 50
    assert cost(f"{{ {CONV} {{ rollup(window: 200) {{ messages }} }} }}") == 1 + 2 + 200


def test_fragments_and_aliases_are_counted() -> None:
    query = f"""query {{ a: {CONV} {{ ...M }} b: {CONV} {{ ...M }} }}
        fragment M on Conversation {{ messages(last: 100) {{ edges {{ node {{ ticks }} }} }} }}"""
    assert cost(query) == 2 * (1 + 2 + 100)
