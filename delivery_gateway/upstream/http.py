"""Our HTTP client under the twilio SDK: GETs over upstream/wire.py, other methods over aiohttp; timeouts, retries,
breaker, single-flight, metrics.

Never hands a 4xx/5xx to the SDK (raises typed `UpstreamError`s here, where the status is known) and never
retries non-idempotent methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from delivery_gateway.kernel.metrics import Children, Metrics
from delivery_gateway.upstream.backoff import (
    RETRYABLE_METHODS,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
    retries_allowed,
)
from delivery_gateway.upstream.breaker import BreakerState, CircuitBreaker
from delivery_gateway.upstream.calls import UpstreamCallLog
from delivery_gateway.upstream.coalesce import SingleFlight
from delivery_gateway.upstream.errors import (
    UpstreamBadRequest,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from delivery_gateway.upstream.routes import route_of
from delivery_gateway.upstream.wire import WireClient

_logger = logging.getLogger("delivery_gateway.upstream.http")

STATUS_TIMEOUT = "timeout"
STATUS_CONNECTION_ERROR = "connection_error"


def _pairs(values: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Form/query pairs as Twilio expects them: lists become repeated keys, booleans lower-case."""
    if not values:
        return None
    out: list[tuple[str, str]] = []
    for key, value in values.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is None:
                continue
            out.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return out


def _text(body: bytes, headers: CIMultiDict[str]) -> str:
    """The answer's text in the charset its Content-Type names (UTF-8 by default: Twilio's JSON)."""
    charset = "utf-8"
    content_type = headers.get("Content-Type", "")
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";", 1)[0].strip().strip('"') or charset
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _twilio_error(text: str) -> tuple[int | None, str | None]:
    """(Twilio error code, message) from an error body, legacy or RFC-9457 shaped."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    code = payload.get("code")
    message = payload.get("message") or payload.get("detail") or payload.get("title")
    return (code if isinstance(code, int) else None), message


def error_for_status(
    status: int, text: str, *, method: str, route: str, retry_after: float | None = None
) -> UpstreamError:
    """The typed exception for a non-success HTTP answer with body `text`."""
    twilio_code, detail = _twilio_error(text)
    return error_for(
        status, method=method, route=route, twilio_code=twilio_code, detail=detail, retry_after=retry_after
    )


def error_for(
    status: int,
    *,
    method: str,
    route: str,
    twilio_code: int | None = None,
    detail: str | None = None,
    retry_after: float | None = None,
) -> UpstreamError:
    """The typed exception for HTTP `status` (404 NotFound, 429 RateLimited, 401/403 Unauthorized, 5xx
    Unavailable, other 4xx BadRequest), carrying status, Twilio error code and templated route."""
    message = f"{method} {route} -> HTTP {status}" + (f": {detail}" if detail else "")
    kwargs: dict[str, Any] = {"status": status, "twilio_code": twilio_code, "route": route}
    if status == 404:
        return UpstreamNotFound(message, **kwargs)
    if status == 429:
        return UpstreamRateLimited(message, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        return UpstreamUnauthorized(message, **kwargs)
    if status >= 500:
        return UpstreamUnavailable(message, **kwargs)
    if 400 <= status < 500:
        return UpstreamBadRequest(message, **kwargs)
    return UpstreamError(message, **kwargs)


class GatewayHttpClient(AsyncHttpClient):
    """`twilio.http.AsyncHttpClient` over kept-alive connections: GETs (every read) through `wire.WireClient`,
    other methods through one pooled aiohttp session. Create it, then `await start()` inside the running loop;
    `await close()` when done.

    Per attempt: breaker check -> semaphore slot -> request with connect/read timeouts -> metrics + call log.
    GET/HEAD/OPTIONS are retried on 429, 5xx, connection errors and connect timeouts (not read timeouts: a
    slow upstream is not helped by more load), with full-jitter backoff or the server's Retry-After; a 429
    without Retry-After is retried with growing waits for up to the rate-limit budget (backoff.RetryPolicy).
    Identical concurrent GETs (same URL and query) share one call.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_retries: int = 3,
        concurrency: int = 32,
        metrics: Metrics | None = None,
        calls: UpstreamCallLog | None = None,
        breaker: CircuitBreaker | None = None,
        retry_policy: RetryPolicy | None = None,
        rate_limit_budget: float | None = None,
        coalesce_reads: bool = True,
        logger: logging.Logger = _logger,
    ) -> None:
        super().__init__(logger, True, None)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.concurrency = concurrency
        self.metrics = metrics if metrics is not None else Metrics()
        self.calls = calls if calls is not None else UpstreamCallLog()
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy(max_retries=max_retries)
        if rate_limit_budget is not None:
            self.retry_policy = dataclasses.replace(self.retry_policy, rate_limit_budget=rate_limit_budget)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.breaker.add_listener(self._breaker_changed)
        self.coalesce_reads = coalesce_reads
        self._flight: SingleFlight[Response] = SingleFlight()
        self._semaphore: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._wire: WireClient | None = None  # GETs (upstream/wire.py); everything else through the session
        self._authorization: dict[tuple[str, str], str] = {}  # Basic credentials, encoded once
        self._latency = Children(self.metrics.upstream_latency)  # (method, route)
        self._requests = Children(self.metrics.upstream_requests)  # (method, route, status)
        self.in_flight = 0  # HTTP attempts holding a concurrency slot right now
        self.max_in_flight = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is not None:
            return
        self._semaphore = asyncio.Semaphore(self.concurrency)
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout),
            raise_for_status=False,
        )
        self._wire = WireClient(
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout, pool_size=self.concurrency
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()
        if session is not None:
            await session.close()

    async def __aenter__(self) -> GatewayHttpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the SDK's entry point -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> Response:
        method = method.upper()
        route = route_of(url)
        query = _pairs(params)
        form = _pairs(data)

        async def send() -> Response:
            return await self._send(method, url, route, query, form, headers, auth, timeout, allow_redirects)

        if self.coalesce_reads and method in RETRYABLE_METHODS and not form:
            key = (method, url, tuple(sorted(query or ())), auth[0] if auth else None)
            response, shared = await self._flight.do(key, send)
            if shared:
                self.metrics.upstream_coalesced.labels(route).inc()
            return response
        return await send()

    # -- attempts --------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        route: str,
        query: list[tuple[str, str]] | None,
        form: list[tuple[str, str]] | None,
        headers: dict[str, str] | None,
        auth: tuple[str, str] | None,
        total_timeout: float | None,
        allow_redirects: bool,
    ) -> Response:
        if self._session is None or self._semaphore is None:
            raise RuntimeError("GatewayHttpClient used before `await start()` (or after close())")
        idempotent = method in RETRYABLE_METHODS
        if auth:
            authorization = self._authorization.get(auth)
            if authorization is None:
                authorization = self._authorization[auth] = aiohttp.encode_basic_auth(auth[0], auth[1])
            headers = {**(headers or {}), "Authorization": authorization}
        attempt = 0
        limited = 0  # retries spent on 429s without Retry-After (they count against the budget, not max_retries)
        started = time.monotonic()
        while True:
            if not self.breaker.allow():
                self.metrics.upstream_circuit_rejections.labels(method, route).inc()
                raise UpstreamCircuitOpen(
                    f"{method} {route}: circuit breaker open, retry in {self.breaker.retry_after():.1f}s",
                    route=route,
                )
            error: UpstreamError
            retry_after: float | None = None
            retryable = False
            reason = ""
            cause: BaseException | None = None
            try:
                status, text, resp_headers = await self._attempt(
                    method, url, route, query, form, headers, total_timeout, allow_redirects
                )
            except TimeoutError as exc:
                self.breaker.record_failure()
                connect_phase = isinstance(exc, aiohttp.ConnectionTimeoutError)
                phase = "connect" if connect_phase else "read"
                error = UpstreamTimeout(f"{method} {route}: {phase} timeout", route=route)
                retryable, reason, cause = idempotent and connect_phase, STATUS_TIMEOUT, exc
            except aiohttp.ClientError as exc:
                self.breaker.record_failure()
                error = UpstreamUnavailable(f"{method} {route}: {type(exc).__name__}: {exc}", route=route)
                retryable, reason, cause = idempotent, STATUS_CONNECTION_ERROR, exc
            except BaseException:  # cancelled, or a bug: no verdict on upstream health, free a probe slot
                self.breaker.release_probe()
                raise
            else:
                if status >= 500:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if status < 400:
                    return Response(status, text, resp_headers)
                if status == 429 or status == 503:
                    retry_after = parse_retry_after(resp_headers.get("Retry-After"))
                error = error_for_status(status, text, method=method, route=route, retry_after=retry_after)
                retryable = idempotent and is_retryable_status(status)
                reason = "429" if status == 429 else "5xx"

            if reason == "429" and retry_after is None and retryable and retries_allowed():
                delay = self.retry_policy.rate_limit_delay(limited, time.monotonic() - started)
                if delay is not None:
                    self.metrics.upstream_retries.labels(method, route, reason).inc()
                    self.logger.info("retrying %s %s in %.3fs after 429 (no Retry-After)", method, route, delay)
                    await asyncio.sleep(delay)
                    limited += 1
                    continue
                error = UpstreamRateLimited(
                    f"{error}; still rate limited after {time.monotonic() - started:.1f}s and {limited} retries "
                    f"(DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET={self.retry_policy.rate_limit_budget:g})",
                    status=error.status,
                    twilio_code=error.twilio_code,
                    route=route,
                )
            elif retryable and attempt < self.retry_policy.max_retries and retries_allowed():
                delay = self.retry_policy.delay(attempt, retry_after)
                if delay is not None:
                    self.metrics.upstream_retries.labels(method, route, reason).inc()
                    self.logger.info("retrying %s %s in %.3fs after %s", method, route, delay, reason)
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
            raise error from cause

    async def _attempt(
        self,
        method: str,
        url: str,
        route: str,
        query: list[tuple[str, str]] | None,
        form: list[tuple[str, str]] | None,
        headers: dict[str, str] | None,
        total_timeout: float | None,
        allow_redirects: bool,
    ) -> tuple[int, str, CIMultiDict[str]]:
        """One HTTP exchange inside a concurrency slot, recorded in metrics and the call log."""
        assert self._session is not None and self._semaphore is not None
        kwargs: dict[str, Any] = {}
        if total_timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(
                total=total_timeout, sock_connect=self.connect_timeout, sock_read=self.read_timeout
            )
        async with self._semaphore:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            started = time.perf_counter()
            status_label = STATUS_CONNECTION_ERROR
            try:
                if method == "GET" and not form and not kwargs and not allow_redirects and self._wire is not None:
                    status, body, resp_headers = await self._wire.get(url, query, headers or {})
                    status_label = str(status)
                    return status, _text(body, resp_headers), resp_headers
                async with self._session.request(
                    method,
                    url,
                    params=query,
                    data=form,
                    headers=headers,
                    allow_redirects=allow_redirects,
                    **kwargs,
                ) as resp:
                    text = await resp.text()
                    status_label = str(resp.status)
                    return resp.status, text, CIMultiDict(resp.headers)
            except TimeoutError:
                status_label = STATUS_TIMEOUT
                raise
            except asyncio.CancelledError:
                status_label = "cancelled"
                raise
            finally:
                self.in_flight -= 1
                self._latency(method, route).observe(time.perf_counter() - started)
                self._requests(method, route, status_label).inc()
                self.calls.record(method, route, status_label)

    def _breaker_changed(self, state: BreakerState) -> None:
        self.metrics.upstream_circuit_open.set(1 if state is BreakerState.OPEN else 0)
        if state is BreakerState.OPEN:
            self.logger.warning("upstream circuit breaker open for %.1fs", self.breaker.cooldown)
