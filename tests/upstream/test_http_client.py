"""GatewayHttpClient against a scripted local server: timeouts, retries, bound, breaker, coalescing, counting.

Never talks to Twilio or a fixed port.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.upstream.backoff import RetryPolicy
from delivery_gateway.upstream.breaker import BreakerState, CircuitBreaker
from delivery_gateway.upstream.errors import (
    UpstreamBadRequest,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from delivery_gateway.upstream.http import GatewayHttpClient
from tests.upstream.scripted import Reply, serve_scripted, unaccepting_listener

CONV = "CH" + "1" * 32
PATH = f"/v1/Conversations/{CONV}/Messages"
ROUTE = "/v1/Conversations/{ConversationSid}/Messages"


def make_client(**kwargs) -> GatewayHttpClient:
    kwargs.setdefault("retry_policy", RetryPolicy(max_retries=kwargs.pop("max_retries", 3), base=0.001, cap=0.01))
    kwargs.setdefault("connect_timeout", 0.3)
    kwargs.setdefault("read_timeout", 0.3)
    return GatewayHttpClient(**kwargs)


async def test_success_is_counted_in_call_log_and_prometheus():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(200, {"messages": []}))
        with http.calls.capture() as calls:
            response = await http.request("GET", server.url + PATH, params={"Order": "desc", "PageSize": 5})
        assert response.status_code == 200
        assert server.queries[-1] == {"Order": "desc", "PageSize": "5"}
        assert calls.count() == 1
        assert calls.by_route() == {ROUTE: 1}
        assert calls.count(ROUTE, method="GET", status="200") == 1
        labels = {"method": "GET", "route": ROUTE, "status": "200"}
        assert http.metrics.sample("delivery_gateway_upstream_requests_total", labels) == 1
        assert (
            http.metrics.sample(
                "delivery_gateway_upstream_request_duration_seconds_count", {"method": "GET", "route": ROUTE}
            )
            == 1
        )


async def test_read_timeout_raises_upstream_timeout_without_retry():
    async with serve_scripted() as server, make_client(read_timeout=0.2) as http:
        server.script(PATH, Reply(200, {}, delay=1.0))
        started = time.perf_counter()
        with pytest.raises(UpstreamTimeout):
            await http.request("GET", server.url + PATH)
        assert time.perf_counter() - started < 0.9
        assert http.calls.by_call() == {("GET", ROUTE, "timeout"): 1}


async def test_connect_timeout_raises_upstream_timeout_after_retries():
    async with unaccepting_listener() as url, make_client(connect_timeout=0.1, max_retries=1) as http:
        started = time.perf_counter()
        with pytest.raises(UpstreamTimeout, match="connect timeout"):
            await http.request("GET", url + PATH)
        assert 0.15 < time.perf_counter() - started < 1.5
        assert http.calls.count(status="timeout") == 2  # first attempt + one retry


async def test_429_with_retry_after_is_honoured_then_succeeds():
    async with serve_scripted() as server, make_client() as http:
        server.script(
            PATH,
            Reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"}),
            Reply(200, {"messages": []}),
        )
        started = time.perf_counter()
        response = await http.request("GET", server.url + PATH)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert 0.95 <= elapsed < 2.0
        assert http.calls.by_call() == {("GET", ROUTE, "429"): 1, ("GET", ROUTE, "200"): 1}
        assert (
            http.metrics.sample(
                "delivery_gateway_upstream_retries_total", {"method": "GET", "route": ROUTE, "reason": "429"}
            )
            == 1
        )


async def test_429_after_retries_is_rate_limited_with_code():
    async with serve_scripted() as server, make_client(max_retries=2) as http:
        server.script(PATH, Reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "0"}))
        with pytest.raises(UpstreamRateLimited) as caught:
            await http.request("GET", server.url + PATH)
        assert caught.value.status == 429 and caught.value.twilio_code == 20429
        assert caught.value.retry_after == 0 and caught.value.route == ROUTE
        assert server.count(PATH) == 3


async def test_retry_after_beyond_the_limit_gives_up_at_once():
    policy = RetryPolicy(max_retries=3, max_retry_after=2.0)
    async with serve_scripted() as server, make_client(retry_policy=policy) as http:
        server.script(PATH, Reply(429, {"code": 20429}, {"Retry-After": "60"}))
        with pytest.raises(UpstreamRateLimited) as caught:
            await http.request("GET", server.url + PATH)
        assert caught.value.retry_after == 60
        assert server.count(PATH) == 1


async def test_5xx_is_retried_then_unavailable():
    async with serve_scripted() as server, make_client(max_retries=3) as http:
        server.script(PATH, Reply(503, {"code": 20503, "message": "Service Unavailable"}))
        with pytest.raises(UpstreamUnavailable) as caught:
            await http.request("GET", server.url + PATH)
        assert caught.value.status == 503 and caught.value.twilio_code == 20503
        assert server.count(PATH) == 4
        assert http.calls.count(ROUTE, status="503") == 4
        labels = {"method": "GET", "route": ROUTE, "status": "503"}
        assert http.metrics.sample("delivery_gateway_upstream_requests_total", labels) == 4


async def test_5xx_then_success_recovers():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(500), Reply(502), Reply(200, {"ok": True}))
        response = await http.request("GET", server.url + PATH)
        assert response.status_code == 200
        assert http.calls.count() == 3


async def test_post_is_not_retried():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(503, {"code": 20503}))
        with pytest.raises(UpstreamUnavailable):
            await http.request("POST", server.url + PATH, data={"Body": "hi", "Author": "a"})
        assert server.count(PATH, "POST") == 1
        assert server.forms[-1] == {"Body": "hi", "Author": "a"}
        assert http.calls.by_call() == {("POST", ROUTE, "503"): 1}


async def test_post_with_429_is_not_retried_either():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(429, {"code": 20429}, {"Retry-After": "0"}))
        with pytest.raises(UpstreamRateLimited):
            await http.request("POST", server.url + PATH, data={"Body": "hi"})
        assert server.count(PATH, "POST") == 1


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, UpstreamBadRequest),
        (401, UpstreamUnauthorized),
        (403, UpstreamUnauthorized),
        (404, UpstreamNotFound),
    ],
)
async def test_4xx_map_to_typed_errors_without_retry(status, exc):
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(status, {"code": 20000 + status, "message": "nope", "status": status}))
        with pytest.raises(exc) as caught:
            await http.request("GET", server.url + PATH)
        assert caught.value.status == status and caught.value.twilio_code == 20000 + status
        assert server.count(PATH) == 1


async def test_connection_refused_is_unavailable():
    async with serve_scripted() as server:
        url = server.url
    async with make_client(max_retries=1) as http:
        with pytest.raises(UpstreamUnavailable):
            await http.request("GET", url + PATH)
        assert http.calls.count(status="connection_error") == 2


async def test_concurrency_never_exceeds_the_bound():
    async with serve_scripted() as server, make_client(concurrency=3, coalesce_reads=False) as http:
        server.script(PATH, Reply(200, {}, delay=0.05))
        await asyncio.gather(*(http.request("GET", server.url + PATH, params={"i": i}) for i in range(12)))
        assert server.count(PATH) == 12
        assert server.max_in_flight == 3
        assert http.max_in_flight == 3


async def test_coalescing_makes_one_call_for_identical_concurrent_reads():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(200, {"messages": []}, delay=0.05))
        url = server.url + PATH
        with http.calls.capture() as calls:
            results = await asyncio.gather(*(http.request("GET", url, params={"PageSize": 5}) for _ in range(10)))
            await http.request("GET", url, params={"PageSize": 6})  # different query: its own call
        assert {r.status_code for r in results} == {200}
        assert server.count(PATH) == 2
        assert calls.count() == 2
        assert http.metrics.sample("delivery_gateway_upstream_coalesced_total", {"route": ROUTE}) == 9


async def test_coalesced_failure_reaches_every_waiter():
    async with serve_scripted() as server, make_client(max_retries=0) as http:
        server.script(PATH, Reply(404, {"code": 20404}, delay=0.05))
        results = await asyncio.gather(
            *(http.request("GET", server.url + PATH) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, UpstreamNotFound) for r in results)
        assert server.count(PATH) == 1


async def test_coalesced_call_survives_one_waiter_being_cancelled():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(200, {"ok": 1}, delay=0.1))
        first = asyncio.ensure_future(http.request("GET", server.url + PATH))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(http.request("GET", server.url + PATH))
        await asyncio.sleep(0.02)
        first.cancel()
        response = await second
        assert response.status_code == 200
        assert server.count(PATH) == 1


async def test_writes_are_never_coalesced():
    async with serve_scripted() as server, make_client() as http:
        server.script(PATH, Reply(201, {"sid": "IM"}, delay=0.05))
        await asyncio.gather(*(http.request("POST", server.url + PATH, data={"Body": "x"}) for _ in range(3)))
        assert server.count(PATH, "POST") == 3


async def test_circuit_breaker_opens_then_recovers():
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, cooldown=10.0, clock=lambda: clock[0])
    metrics = Metrics()
    async with (
        serve_scripted() as server,
        make_client(max_retries=0, breaker=breaker, metrics=metrics) as http,
    ):
        server.script(PATH, Reply(500, {"code": 20500}))
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await http.request("GET", server.url + PATH)
        assert breaker.state is BreakerState.OPEN
        assert metrics.sample("delivery_gateway_upstream_circuit_open") == 1

        # Open: refused without touching the server.
        with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
            await http.request("GET", server.url + PATH)
        assert server.count(PATH) == 3
        assert http.calls.count() == 3
        rejections = {"method": "GET", "route": ROUTE}
        assert metrics.sample("delivery_gateway_upstream_circuit_rejections_total", rejections) == 1

        # Cool-down over: one probe goes through; it fails, so the breaker re-opens.
        clock[0] += 10.0
        with pytest.raises(UpstreamUnavailable, match="HTTP 500"):
            await http.request("GET", server.url + PATH)
        assert breaker.state is BreakerState.OPEN and server.count(PATH) == 4

        # Next cool-down: the upstream is back; the probe succeeds and the breaker closes.
        server.script(PATH, Reply(200, {"ok": 1}))
        clock[0] += 10.0
        assert (await http.request("GET", server.url + PATH)).status_code == 200
        assert breaker.state is BreakerState.CLOSED
        assert metrics.sample("delivery_gateway_upstream_circuit_open") == 0


async def test_breaker_stops_retries_mid_call():
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60.0)
    async with serve_scripted() as server, make_client(max_retries=5, breaker=breaker) as http:
        server.script(PATH, Reply(503))
        with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
            await http.request("GET", server.url + PATH)
        assert server.count(PATH) == 2


async def test_4xx_do_not_trip_the_breaker():
    breaker = CircuitBreaker(failure_threshold=2, cooldown=60.0)
    async with serve_scripted() as server, make_client(breaker=breaker) as http:
        for _ in range(4):
            with pytest.raises(UpstreamNotFound):
                await http.request("GET", server.url + "/v1/Conversations/" + CONV)
        assert breaker.state is BreakerState.CLOSED


async def test_request_before_start_is_a_programming_error():
    http = make_client()
    with pytest.raises(RuntimeError, match="start"):
        await http.request("GET", "http://127.0.0.1:9/v1/Conversations")


async def test_cancelled_probe_frees_the_half_open_slot():
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown=1.0, clock=lambda: clock[0])
    async with (
        serve_scripted() as server,
        make_client(max_retries=0, breaker=breaker, read_timeout=2) as http,
    ):
        server.script(PATH, Reply(500))
        with pytest.raises(UpstreamUnavailable):
            await http.request("GET", server.url + PATH)
        clock[0] += 1.0
        server.script(PATH, Reply(200, {}, delay=0.5))
        probe = asyncio.ensure_future(http.request("GET", server.url + PATH, params={"probe": 1}))
        await asyncio.sleep(0.05)
        assert breaker.state is BreakerState.HALF_OPEN
        probe.cancel()
        await asyncio.sleep(0.6)  # the shared call finishes in its own task and closes the breaker
        assert breaker.state is BreakerState.CLOSED


async def test_cancelled_uncoalesced_probe_lets_the_next_caller_probe():
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown=1.0, clock=lambda: clock[0])
    client = make_client(max_retries=0, breaker=breaker, coalesce_reads=False)
    async with serve_scripted() as server, client as http:
        server.script(PATH, Reply(500))
        with pytest.raises(UpstreamUnavailable):
            await http.request("GET", server.url + PATH)
        clock[0] += 1.0
        server.script(PATH, Reply(200, {}, delay=0.2))
        probe = asyncio.ensure_future(http.request("GET", server.url + PATH))
        await asyncio.sleep(0.05)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert http.calls.count(status="cancelled") == 1
        assert (await http.request("GET", server.url + PATH)).status_code == 200  # the next probe
        assert breaker.state is BreakerState.CLOSED
