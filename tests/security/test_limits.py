"""Operation limits and error masking: depth, aliases, tokens, page sizes, cost, introspection, masked errors.

Every rejection must happen before any resolver ("upstream") runs, and carry an `extensions.code`.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from graphql import parse

from delivery_gateway.limits import CostEstimator, FieldCost, expanded_field_count
from tests.security import toy
from tests.security.conftest import API_KEY, CONV_ALICE, make_settings

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


async def run(query: str, variables: dict | None = None, headers: dict | None = None, **overrides) -> httpx.Response:
    app = toy.build_app(make_settings(**overrides))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as c:
        return await c.post(
            "/graphql", json={"query": query, "variables": variables}, headers={**HEADERS, **(headers or {})}
        )


def rejected(response: httpx.Response, code: str) -> str:
    body = response.json()
    assert body.get("data") is None, body
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert toy.UPSTREAM_CALLS == [], "rejected operations must not reach any resolver"
    return body["errors"][0]["message"]


CONV = f'conversation(sid: "{CONV_ALICE}")'


async def test_depth_limit() -> None:
    query = f"{{ {CONV} {{ messages {{ receipts {{ status }} }} }} }}"
    assert (await run(query)).json()["data"] is not None
    toy.UPSTREAM_CALLS.clear()
    assert "depth" in rejected(await run(query, DELIVERY_GATEWAY_MAX_QUERY_DEPTH=2), "QUERY_TOO_COMPLEX")


async def test_alias_limit() -> None:
    query = "{ " + " ".join(f"a{i}: whoami" for i in range(6)) + " }"
    assert (await run(query, DELIVERY_GATEWAY_MAX_ALIASES=6)).json()["data"]["a5"]
    assert "aliases" in rejected(await run(query, DELIVERY_GATEWAY_MAX_ALIASES=5), "QUERY_TOO_COMPLEX")


async def test_token_limit() -> None:
    query = "{ " + " ".join(["whoami"] * 150) + " }"
    assert "tokens" in rejected(await run(query, DELIVERY_GATEWAY_MAX_TOKENS=100), "QUERY_TOO_COMPLEX")


@pytest.mark.parametrize("value", [101, -1, 10_000])
async def test_page_size_limit_literal_and_variable(value: int) -> None:
    literal = f"{{ {CONV} {{ messages(first: {value}) {{ index }} }} }}"
    rejected(await run(literal), "BAD_USER_INPUT")
    variable = f"query($n: Int) {{ {CONV} {{ messages(last: $n) {{ index }} }} }}"
    rejected(await run(variable, {"n": value}), "BAD_USER_INPUT")


async def test_page_size_at_the_limit_is_fine() -> None:
    response = await run(f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ index }} }} }}", {"n": 100})
    assert response.json()["data"]["conversation"]["messages"]


async def test_cost_ceiling_counts_pages_times_nested_calls() -> None:
    query = f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ receipts {{ status }} }} }} }}"
    # conversation 1 + messages 1 + n x receipts 1
    assert (await run(query, {"n": 8}, DELIVERY_GATEWAY_MAX_QUERY_COST=10)).json()["data"]
    toy.UPSTREAM_CALLS.clear()
    message = rejected(await run(query, {"n": 9}, DELIVERY_GATEWAY_MAX_QUERY_COST=10), "QUERY_TOO_COMPLEX")
    assert "11 upstream calls" in message


async def test_aliased_copies_add_up() -> None:
    one = f"{CONV} {{ messages(first: 100) {{ receipts {{ status }} }} }}"
    query = "{ " + " ".join(f"m{i}: {one}" for i in range(10)) + " }"
    rejected(await run(query), "QUERY_TOO_COMPLEX")  # 10 x 102 > 1000


async def test_fragment_bomb_is_rejected_fast() -> None:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    query = "query { ...F0 } " + chain
    query += " fragment F60 on Query { whoami }"
    assert "expands" in rejected(await run(query, DELIVERY_GATEWAY_MAX_TOKENS=5000), "QUERY_TOO_COMPLEX")


async def test_introspection_switch() -> None:
    query = "{ __schema { queryType { name } } }"
    assert (await run(query)).json()["data"]["__schema"]["queryType"]["name"] == "Query"
    rejected(await run(query, DELIVERY_GATEWAY_INTROSPECTION=False), "GRAPHQL_VALIDATION_FAILED")
    assert (await run("{ __typename }", DELIVERY_GATEWAY_INTROSPECTION=False)).json()["data"]


async def test_unexpected_errors_masked_and_logged_with_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="delivery_gateway.errors"):
        response = await run("{ boom }", headers={"X-Request-ID": "req-12345"})
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "correlationId": "req-12345"}
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-12345"
    assert "req-12345" in caplog.text and "hunter2" in caplog.text


async def test_typed_and_validation_errors_pass_through() -> None:
    forbidden = await run(f'{{ conversation(sid: "{"CH" + "0" * 32}") {{ sid }} }}', headers={})
    assert forbidden.json()["data"]["conversation"]["sid"]  # internal caller: allowed
    unknown = (await run("{ nope }")).json()["errors"][0]
    assert unknown["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "nope" in unknown["message"]
    syntax = (await run("{ whoami ")).json()["errors"][0]
    assert syntax["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    variables = (await run("query($t: String!) { echo(text: $t) }", {})).json()["errors"][0]
    assert variables["extensions"]["code"] == "BAD_USER_INPUT"


def test_expanded_field_count_is_memoised_and_cycle_safe() -> None:
    chain = " ".join(f"fragment F{i} on Q {{ ...F{i + 1} ...F{i + 1} }}" for i in range(200))
    document = parse("{ ...F0 } " + chain + " fragment F200 on Q { a }")
    assert expanded_field_count(document, cap=10**9) == 10**9 + 1  # 2**200 fields, counted in linear time
    assert expanded_field_count(parse("{ ...A } fragment A on Q { a ...B } fragment B on Q { b ...A }")) == 2


def test_cost_table_keys_match_the_toy_schema() -> None:
    schema = toy.build_schema(make_settings())._schema
    for key in toy.TOY_COSTS:
        type_name, field = key.split(".")
        assert field in schema.get_type(type_name).fields, key
    estimator = CostEstimator(schema, cost_table={"Query.conversation": FieldCost(calls=3)})
    document = parse(f"{{ {CONV} {{ sid }} }}")
    assert estimator.estimate(document, document.definitions[0], {}) == 3
