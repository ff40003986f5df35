"""The limits against the gateway's real schema: every cost-table key names a real field, typical operations fit,
the one page-size rule holds for the estimate and the resolvers alike, introspection can be switched off.

Cost tests use the schema's SDL only (no resolvers run); page-size tests run queries over a fake upstream.
"""

from __future__ import annotations

import pytest
from graphql import GraphQLObjectType, build_schema, parse

from delivery_gateway.graphql.context import GatewayServices
from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.graphql.limits import DEFAULT_COST_TABLE, CostEstimator, select_operation
from delivery_gateway.graphql.paging import PageSizes
from delivery_gateway.graphql.schema import schema_sdl
from delivery_gateway.kernel.settings import Settings
from tests.graphql.gql_support import Runner

SCHEMA = build_schema(schema_sdl())
CONV = 'conversation(sid: "CH00000000000000000000000000000000")'


def cost(query: str, variables: dict | None = None, page_sizes: PageSizes = PageSizes()) -> int:
    document = parse(query)
    return CostEstimator(SCHEMA, page_sizes=page_sizes).estimate(document, select_operation(document, None), variables)


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
    with pytest.raises(BadUserInput):
        cost(query, {"n": 101})


def test_a_window_costs_the_upstream_pages_it_may_straddle() -> None:
    query = f"query($n: Int) {{ {CONV} {{ messages(last: $n) {{ edges {{ node {{ sid }} }} }} }} }}"
    # A window starting mid-page touches one page more than it fills (50 messages per upstream page).
    assert [cost(query, {"n": n}) for n in (0, 1, 50, 51, 100)] == [1 + 1, 1 + 2, 1 + 2, 1 + 3, 1 + 3]
    big = PageSizes(maximum=500)
    assert cost(query, {"n": 500}, big) == 1 + 11
    conversations = "query($n: Int) { conversations(first: $n) { edges { node { sid } } } }"
    assert cost(conversations, {"n": 10}) == 5  # participant callers: up to 5 pages scanned
    assert cost(conversations, {"n": 500}, big) == 11


def test_rollup_grows_with_its_window() -> None:
    assert cost(f"{{ {CONV} {{ rollup {{ messages }} }} }}") == 1 + 2 + 50
    assert cost(f"{{ {CONV} {{ rollup(window: 200) {{ messages }} }} }}") == 1 + 2 + 200


def test_fragments_and_aliases_are_counted() -> None:
    query = f"""query {{ a: {CONV} {{ ...M }} b: {CONV} {{ ...M }} }}
        fragment M on Conversation {{ messages(last: 100) {{ edges {{ node {{ ticks }} }} }} }}"""
    assert cost(query) == 2 * (1 + 3 + 100)


def test_page_size_rule_follows_the_setting_above_and_below_100() -> None:
    query = f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ edges {{ node {{ sid }} }} }} }} }}"
    small = PageSizes(maximum=20)
    assert small.default == 20
    assert cost(query, {}, small) == 1 + 2 + 0 and cost(query, {"n": 20}, small) == 1 + 2
    with pytest.raises(BadUserInput, match="between 0 and 20"):
        cost(query, {"n": 21}, small)
    assert cost(query, {"n": 300}, PageSizes(maximum=300)) == 1 + 7


WINDOW = 'since: "2026-01-01T00:00:00Z", until: "2026-01-02T00:00:00Z"'


def ledger_queries(query: str) -> int:
    document = parse(query)
    return CostEstimator(SCHEMA).ledger_queries(document, select_operation(document, None), None)


def test_ledger_fields_cost_ledger_queries_and_what_is_read_below_them() -> None:
    """A report is one ledger query and at most one upstream call (the default service); below a page of failed
    messages, each item's conversation, message and participants count like any other upstream read."""
    report = f"{{ deliveryReport({WINDOW}, groupBy: [STATUS]) {{ total rows {{ count error {{ name }} }} }} }}"
    assert cost(report) == 1 and ledger_queries(report) == 1
    node = "conversation { sid } message { sid ticks } recipient { participant { sid } } error { name }"
    failed = f"{{ failedMessages({WINDOW}, first: 20) {{ edges {{ node {{ {node} }} }} }} }}"
    assert cost(failed) == 1 + 20 * (1 + 1 + 1 + 1) and ledger_queries(failed) == 1
    plain = f"{{ failedMessages({WINDOW}) {{ edges {{ node {{ receiptSid errorCode }} }} }} }}"
    assert cost(plain) == 1
    both = f"{{ a: deliveryReport({WINDOW}) {{ total }} b: deliveryReport({WINDOW}) {{ total }} {plain[2:-2]} }}"
    assert ledger_queries(both) == 3
    stream = "subscription { serviceDeliveryUpdates { cursor message { ticks } } }"
    assert ledger_queries(stream) == 1 and cost(stream) == 1 + 1
    assert ledger_queries(f"{{ {CONV} {{ messages {{ edges {{ node {{ ticks }} }} }} }} }}") == 0


async def test_introspection_switch(fake):
    off = Runner(GatewayServices(Settings(_env_file=None, DELIVERY_GATEWAY_INTROSPECTION=False), upstream=fake))
    result = await off("{ __schema { queryType { name } } }")
    assert result.errors
    on = Runner(GatewayServices(Settings(_env_file=None), upstream=fake))
    assert (await on("{ __schema { queryType { name } } }")).data["__schema"]["queryType"]["name"] == "Query"
