"""Pure pieces of the upstream stack: routes, backoff, breaker, call log, single-flight, metrics rendering.

Never performs network I/O.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.upstream.backoff import RetryPolicy, is_retryable_status, parse_retry_after
from delivery_gateway.upstream.breaker import BreakerState, CircuitBreaker
from delivery_gateway.upstream.calls import UpstreamCallLog
from delivery_gateway.upstream.coalesce import SingleFlight
from delivery_gateway.upstream.routes import route_of

IS, CH, IM, DY, MB = ("IS" + "a" * 32, "CH" + "b" * 32, "IM" + "c" * 32, "DY" + "d" * 32, "MB" + "e" * 32)


@pytest.mark.parametrize(
    ("url", "route"),
    [
        (f"https://conversations.twilio.com/v1/Conversations/{CH}", "/v1/Conversations/{Sid}"),
        (
            f"http://127.0.0.1:1/v1/Conversations/{CH}/Messages?PageSize=5",
            "/v1/Conversations/{ConversationSid}/Messages",
        ),
        (
            f"/v1/Services/{IS}/Conversations/{CH}/Messages/{IM}/Receipts/{DY}",
            "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Messages/{MessageSid}/Receipts/{Sid}",
        ),
        (
            f"/v1/Services/{IS}/Conversations/{CH}/Participants",
            "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants",
        ),
        (f"/v1/Services/{IS}/Configuration/Webhooks", "/v1/Services/{ChatServiceSid}/Configuration/Webhooks"),
        ("/v1/Configuration/Webhooks", "/v1/Configuration/Webhooks"),
        (f"/v1/Services/{IS}", "/v1/Services/{Sid}"),
        ("/v1/Conversations/not-a-sid", "/v1/Conversations/not-a-sid"),
    ],
)
def test_route_templates_match_the_spec(url, route):
    assert route_of(url) == route


def test_every_route_we_produce_is_a_spec_path():
    import json
    from pathlib import Path

    spec_file = Path(__file__).resolve().parents[2] / "delivery_gateway/emulator/twilio_conversations_v1_subset.json"
    if not spec_file.exists():
        pytest.skip("spec subset not present")
    paths = set(json.loads(spec_file.read_text())["paths"])
    ours = [
        f"/v1/Conversations/{CH}",
        f"/v1/Conversations/{CH}/Messages",
        f"/v1/Conversations/{CH}/Messages/{IM}",
        f"/v1/Conversations/{CH}/Messages/{IM}/Receipts",
        f"/v1/Conversations/{CH}/Messages/{IM}/Receipts/{DY}",
        f"/v1/Conversations/{CH}/Participants",
        f"/v1/Services/{IS}/Conversations/{CH}/Messages/{IM}/Receipts",
        f"/v1/Services/{IS}/Conversations/{CH}",
        f"/v1/Services/{IS}/Conversations/{CH}/Participants",
    ]
    assert {route_of(u) for u in ours} <= paths


def test_retry_after_parsing():
    assert parse_retry_after(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0
    now = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after("soon") is None


def test_retryable_statuses():
    assert [s for s in (200, 400, 404, 409, 429, 500, 502, 503, 504) if is_retryable_status(s)] == [
        429,
        500,
        502,
        503,
        504,
    ]


@given(attempt=st.integers(min_value=0, max_value=30))
def test_full_jitter_stays_within_the_exponential_cap(attempt):
    policy = RetryPolicy(base=0.1, cap=2.0)
    delay = policy.delay(attempt)
    assert delay is not None and 0.0 <= delay <= min(2.0, 0.1 * 2**attempt)


def test_retry_after_wins_unless_too_long():
    policy = RetryPolicy(max_retry_after=5.0, rng=lambda a, b: b)
    assert policy.delay(0, retry_after=4.0) == 4.0
    assert policy.delay(0, retry_after=6.0) is None
    assert policy.delay(3) == 0.8


def test_breaker_state_machine():
    now = [100.0]
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(failure_threshold=2, cooldown=5.0, clock=lambda: now[0], on_change=changes.append)
    breaker.record_failure()
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_after() == 5.0
    now[0] += 5.0
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN and not breaker.allow()  # only one probe
    breaker.release_probe()  # probe cancelled: the next caller may probe
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_call_log_counts_and_captures():
    log = UpstreamCallLog()
    log.record("get", "/a", 200)
    with log.capture() as outer:
        log.record("GET", "/a", 503)
        with log.capture() as inner:
            log.record("POST", "/b", "201")
    log.record("GET", "/a", 200)
    assert log.count() == 4 and log.count("/a") == 3 and log.count(method="post") == 1
    assert log.count("/a", status=200) == 2
    assert outer.count() == 2 and outer.by_route() == {"/a": 1, "/b": 1}
    assert inner.by_call() == {("POST", "/b", "201"): 1} and len(inner) == 1
    log.reset()
    assert log.count() == 0 and outer.count() == 2


async def test_single_flight_shares_one_call_and_forgets_it_after():
    flight: SingleFlight[int] = SingleFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.02)
        return 42

    results = await asyncio.gather(*(flight.do("k", work) for _ in range(5)))
    assert [r for r, _ in results] == [42] * 5
    assert sorted(shared for _, shared in results) == [False, True, True, True, True]
    assert runs == 1 and len(flight) == 0
    await flight.do("k", work)
    assert runs == 2


async def test_single_flight_propagates_errors_without_unretrieved_warnings():
    flight: SingleFlight[int] = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("x")

    task = asyncio.ensure_future(flight.do("k", boom))
    await asyncio.sleep(0)
    task.cancel()  # the only waiter leaves; the call still completes and its error is retrieved
    await asyncio.sleep(0.03)
    assert len(flight) == 0
    with pytest.raises(RuntimeError):
        await flight.do("k", boom)


def test_metrics_registry_is_private_and_renders():
    a, b = Metrics(), Metrics()
    a.upstream_requests.labels("GET", "/v1/Conversations/{Sid}", "200").inc()
    a.webhooks_received.labels("onMessageAdded", "accepted").inc()
    a.subscriptions_active.inc()
    a.pubsub_messages.labels("published").inc()
    body, content_type = a.render()
    assert content_type.startswith("text/plain")
    sample = b'upstream_requests_total{method="GET",route="/v1/Conversations/{Sid}",status="200"} 1.0'
    assert b"delivery_gateway_" + sample in body
    assert b"delivery_gateway_subscriptions_active 1.0" in body
    assert (
        b.sample(
            "delivery_gateway_upstream_requests_total",
            {"method": "GET", "route": "/v1/Conversations/{Sid}", "status": "200"},
        )
        == 0
    )
