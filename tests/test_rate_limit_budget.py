"""429 without Retry-After, as Twilio's Conversations API answers an account over its per-second limits.

Through the assembled gateway on the emulator: a burst of N refusals is waited out with growing, jittered waits
(the query succeeds, N + 1 calls, within the budget), and a refusal that outlasts
DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET ends in UPSTREAM_RATE_LIMITED after a bounded number of calls.
"""

from __future__ import annotations

import time

import httpx
from hypothesis import given
from hypothesis import strategies as st

from delivery_gateway.upstream.backoff import RetryPolicy
from tests.app_support import gateway_on_emulator
from tests.test_upstream_resilience import CONVERSATION_ROUTE, quiet_conversation

QUERY = "query($s: String!) { conversation(sid: $s) { sid } }"


async def ask(client: httpx.AsyncClient, conversation: str) -> tuple[dict, float]:
    started = time.monotonic()
    body = (await client.post("/graphql", json={"query": QUERY, "variables": {"s": conversation}})).json()
    return body, time.monotonic() - started


async def test_a_burst_of_429s_without_retry_after_is_waited_out_within_the_budget():
    budget, refusals = 3.0, 3
    async with (
        gateway_on_emulator(
            DELIVERY_GATEWAY_DEMO_MODE=True,
            DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET=budget,
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=1,  # fewer than the refusals: the budget, not the count, rules
        ) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as client,
    ):
        state = gw.emulator.state
        conversation = quiet_conversation(gw.emulator, 1)
        assert state.config.retry_after is None  # the emulator's default: no Retry-After, as Twilio documents none
        state.requests.reset()
        state.config.rate_limit_next = refusals
        body, elapsed = await ask(client, conversation)
        assert body == {"data": {"conversation": {"sid": conversation}}}
        assert state.requests.snapshot() == {CONVERSATION_ROUTE: refusals + 1}
        # Waits of at least 0.125, 0.25 and 0.5 s: the retries span most of a second, not one instant.
        assert 0.875 <= elapsed <= budget, elapsed


async def test_a_refusal_that_outlasts_the_budget_is_upstream_rate_limited():
    budget = 1.0
    async with (
        gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET=budget) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as client,
    ):
        state = gw.emulator.state
        conversation = quiet_conversation(gw.emulator, 1)
        state.requests.reset()
        state.config.rate_limit_rate = 1.0
        body, elapsed = await ask(client, conversation)
        assert body["data"] == {"conversation": None}
        [error] = body["errors"]
        assert (error["extensions"]["code"], error["extensions"]["twilioCode"]) == ("UPSTREAM_RATE_LIMITED", 20429)
        assert error["message"].startswith("Twilio is rate-limiting the gateway; retry later.")
        calls = state.requests.snapshot()[CONVERSATION_ROUTE]
        most = RetryPolicy(rate_limit_budget=budget).rate_limit_calls()
        assert 3 <= calls <= most == 4, calls  # waits of 0.125-0.25, 0.25-0.5 s fit, a third (0.5-1 s) may
        assert elapsed <= budget + 0.5, elapsed

        state.requests.reset()
        state.config.rate_limit_rate = 0.0
        body, _ = await ask(client, conversation)
        assert body == {"data": {"conversation": {"sid": conversation}}}
        assert state.requests.snapshot() == {CONVERSATION_ROUTE: 1}


async def test_no_budget_means_a_429_is_answered_at_once():
    async with (
        gateway_on_emulator(DELIVERY_GATEWAY_DEMO_MODE=True, DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET=0) as gw,
        httpx.AsyncClient(base_url=gw.base_url) as client,
    ):
        state = gw.emulator.state
        conversation = quiet_conversation(gw.emulator, 1)
        state.requests.reset()
        state.config.rate_limit_next = 1
        body, _ = await ask(client, conversation)
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_RATE_LIMITED"
        assert state.requests.snapshot() == {CONVERSATION_ROUTE: 1}


@given(
    budget=st.floats(min_value=0.0, max_value=30.0),
    draws=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=40, max_size=40),
)
def test_rate_limit_waits_grow_stay_within_the_budget_and_bound_the_calls(budget: float, draws: list[float]):
    draws_left = iter(draws)
    policy = RetryPolicy(rate_limit_budget=budget, rng=lambda low, high: low + (high - low) * next(draws_left))
    elapsed, attempt = 0.0, 0
    while (wait := policy.rate_limit_delay(attempt, elapsed)) is not None:
        ceiling = min(policy.rate_limit_cap, policy.rate_limit_base * 2**attempt)
        assert ceiling / 2 <= wait <= ceiling
        elapsed += wait
        attempt += 1
    assert elapsed <= budget
    assert attempt + 1 <= policy.rate_limit_calls()
