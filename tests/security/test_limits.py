"""Operation limits and error masking on the gateway as deployed: depth, aliases, tokens, page sizes, cost,
introspection, masked errors.

Every rejection happens before any resolver runs (no upstream call) and carries an `extensions.code`.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from graphql import parse

from delivery_gateway.graphql.limits import expanded_field_count
from tests.security.conftest import API_KEY, CONV_ALICE, World, post

CONV = f'conversation(sid: "{CONV_ALICE}")'


async def run(
    world: World, query: str, variables: dict | None = None, headers: dict | None = None, **overrides: Any
) -> httpx.Response:
    return await post(world.build(**overrides), {"query": query, "variables": variables}, API_KEY, headers=headers)


def rejected(world: World, response: httpx.Response, code: str) -> str:
    body = response.json()
    assert body.get("data") is None, body
    assert body["errors"][0]["extensions"]["code"] == code, body
    assert world.fake.calls.total() == 0, "rejected operations must not reach any resolver"
    return str(body["errors"][0]["message"])


async def test_depth_limit(world: World) -> None:
    query = f"{{ {CONV} {{ messages {{ edges {{ node {{ receipts {{ status }} }} }} }} }} }}"
    assert "depth" in rejected(world, await run(world, query, DELIVERY_GATEWAY_MAX_QUERY_DEPTH=4), "QUERY_TOO_COMPLEX")
    assert (await run(world, query)).json()["data"]["conversation"]["messages"]["edges"]


async def test_alias_limit(world: World) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(6)) + " }"
    assert "aliases" in rejected(world, await run(world, query, DELIVERY_GATEWAY_MAX_ALIASES=5), "QUERY_TOO_COMPLEX")
    assert (await run(world, query, DELIVERY_GATEWAY_MAX_ALIASES=6)).json()["data"]["a5"] == "Query"


async def test_token_limit(world: World) -> None:
    query = "{ " + " ".join(["__typename"] * 150) + " }"
    assert "tokens" in rejected(world, await run(world, query, DELIVERY_GATEWAY_MAX_TOKENS=100), "QUERY_TOO_COMPLEX")


@pytest.mark.parametrize("value", [101, -1, 10_000])
async def test_page_size_limit_literal_and_variable(world: World, value: int) -> None:
    literal = f"{{ {CONV} {{ messages(first: {value}) {{ edges {{ cursor }} }} }} }}"
    rejected(world, await run(world, literal), "BAD_USER_INPUT")
    variable = f"query($n: Int) {{ {CONV} {{ messages(last: $n) {{ edges {{ cursor }} }} }} }}"
    assert "between 0 and 100" in rejected(world, await run(world, variable, {"n": value}), "BAD_USER_INPUT")


async def test_page_size_follows_the_setting(world: World) -> None:
    query = f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ edges {{ cursor }} }} }} }}"
    assert (await run(world, query, {"n": 100})).json()["data"]["conversation"]["messages"]
    world.fake.calls.clear()
    rejected(world, await run(world, query, {"n": 3}, DELIVERY_GATEWAY_MAX_PAGE_SIZE=2), "BAD_USER_INPUT")
    world.fake.calls.clear()
    wide = await run(world, query, {"n": 150}, DELIVERY_GATEWAY_MAX_PAGE_SIZE=150)
    assert len(wide.json()["data"]["conversation"]["messages"]["edges"]) == 3


async def test_cost_ceiling_counts_pages_times_nested_calls(world: World) -> None:
    query = f"query($n: Int) {{ {CONV} {{ messages(first: $n) {{ edges {{ node {{ receipts {{ status }} }} }} }} }} }}"
    # conversation 1 + messages 2 (a window may straddle two upstream pages) + n x receipts 1
    message = rejected(
        world, await run(world, query, {"n": 8}, DELIVERY_GATEWAY_MAX_QUERY_COST=10), "QUERY_TOO_COMPLEX"
    )
    assert "11 upstream calls" in message
    assert (await run(world, query, {"n": 7}, DELIVERY_GATEWAY_MAX_QUERY_COST=10)).json()["data"]


async def test_aliased_copies_add_up(world: World) -> None:
    one = f"{CONV} {{ messages(first: 100) {{ edges {{ node {{ receipts {{ status }} }} }} }} }}"
    query = "{ " + " ".join(f"m{i}: {one}" for i in range(10)) + " }"
    rejected(world, await run(world, query), "QUERY_TOO_COMPLEX")  # 10 x (1 + 3 + 100) > 1000


async def test_fragment_bomb_is_rejected_fast(world: World) -> None:
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    query = "query { ...F0 } " + chain + " fragment F60 on Query { __typename }"
    response = await run(world, query, DELIVERY_GATEWAY_MAX_TOKENS=5000)
    assert "expands" in rejected(world, response, "QUERY_TOO_COMPLEX")


async def test_introspection_switch(world: World) -> None:
    query = "{ __schema { queryType { name } } }"
    assert (await run(world, query)).json()["data"]["__schema"]["queryType"]["name"] == "Query"
    rejected(world, await run(world, query, DELIVERY_GATEWAY_INTROSPECTION=False), "GRAPHQL_VALIDATION_FAILED")
    assert (await run(world, "{ __typename }", DELIVERY_GATEWAY_INTROSPECTION=False)).json()["data"]


async def test_unexpected_errors_masked_and_logged_with_request_id(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.fake.fail["fetch_conversation"] = RuntimeError("secret detail: db password is hunter2")
    with caplog.at_level(logging.ERROR, logger="delivery_gateway.errors"):
        response = await run(world, f"{{ {CONV} {{ sid }} }}", headers={"X-Request-ID": "req-12345"})
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "correlationId": "req-12345"}
    assert "hunter2" not in response.text
    assert response.headers["x-request-id"] == "req-12345"
    assert "req-12345" in caplog.text and "hunter2" in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["delivery_gateway.errors"]  # logged once, by the one error path


async def test_typed_and_validation_errors_pass_through(world: World) -> None:
    allowed = await run(world, f'{{ conversation(sid: "{CONV_ALICE}") {{ sid }} }}')
    assert allowed.json()["data"]["conversation"]["sid"] == CONV_ALICE  # internal caller: allowed
    unknown = (await run(world, "{ nope }")).json()["errors"][0]
    assert unknown["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" and "nope" in unknown["message"]
    syntax = (await run(world, "{ __typename ")).json()["errors"][0]
    assert syntax["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    variables = (await run(world, "query($t: String!) { conversation(sid: $t) { sid } }", {})).json()["errors"][0]
    assert variables["extensions"]["code"] == "BAD_USER_INPUT"


def test_expanded_field_count_is_memoised_and_cycle_safe() -> None:
    chain = " ".join(f"fragment F{i} on Q {{ ...F{i + 1} ...F{i + 1} }}" for i in range(200))
    document = parse("{ ...F0 } " + chain + " fragment F200 on Q { a }")
    assert expanded_field_count(document, cap=10**9) == 10**9 + 1  # 2**200 fields, counted in linear time
    assert expanded_field_count(parse("{ ...A } fragment A on Q { a ...B } fragment B on Q { b ...A }")) == 2
