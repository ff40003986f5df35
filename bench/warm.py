"""Row 1: the warm chat screen, req/s at N connections, against the raw stack serving the same bytes (wrk-driven).

Never asserts a threshold: it measures, reports, and says when the measurement itself is not trustworthy (errors,
a saturated load generator, upstream calls inside a warm window).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.chat_screen import CONVERSATION, JSON_HEADERS, post_query, request_body, upstream_calls
from bench.gateway import WARM_TTL, gateway_env
from bench.harness import RowResult, ServerProcess, emulator_process, ratio, server_process, table
from bench.wrk import WrkResult, fixed_post_script, run_wrk

TARGET = 0.8  # gateway req/s >= 0.8 x the raw stack
SATURATED = 0.9  # a wrk thread above this share of a core may be the bottleneck


def _merge(results: list[WrkResult]) -> WrkResult:
    first = results[0]
    total = sum(r.requests for r in results)

    def weighted(attr: str) -> float:
        return sum(getattr(r, attr) * r.requests for r in results) / total if total else float("nan")

    return WrkResult(
        requests=total,
        seconds=sum(r.seconds for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        p50_ms=weighted("p50_ms"),  # request-weighted mean of the windows' percentiles
        p90_ms=weighted("p90_ms"),
        p99_ms=max(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
        wrapped=0,
        threads=first.threads,
        connections=first.connections,
        wrk_cpu_s=sum(r.wrk_cpu_s for r in results),
        server_cpu_s=sum(r.server_cpu_s for r in results),
    )


@dataclass
class WarmReport:
    gateway: WrkResult
    raw: WrkResult
    response_bytes: int
    identical_bytes: bool
    upstream_warmup: int
    upstream_in_windows: int
    gateway_cpu_ms: float  # server CPU per request, from sequential requests (no request cut off by a window)
    raw_cpu_ms: float

    @property
    def ratio(self) -> float:
        return ratio(self.gateway.rps, self.raw.rps)

    @staticmethod
    def load_cpu_ms(result: WrkResult) -> float:
        """Server CPU per answered request inside the wrk windows (the CPU a request costs under load: the
        per-wake-up costs that sequential requests pay one by one are shared there)."""
        return result.server_cpu_s * 1000 / result.requests if result.requests else float("nan")

    def render(self) -> str:
        head = ["server", "req/s", "p50 ms", "p99 ms", "requests", "non-2xx", "sock err", "server CPU", "wrk CPU"]
        head += ["load CPU ms/req", "CPU ms/req"]
        rows = [
            [
                name,
                f"{r.rps:.0f}",
                r.p50_ms,
                r.p99_ms,
                r.requests,
                r.non_2xx,
                r.socket_errors,
                f"{r.server_cpu_share:.0%}",
                f"{r.wrk_cpu_share:.0%}",
                f"{self.load_cpu_ms(r):.3f}",
                f"{cpu_ms:.3f}",
            ]
            for name, r, cpu_ms in (
                ("raw stack (reference)", self.raw, self.raw_cpu_ms),
                ("gateway", self.gateway, self.gateway_cpu_ms),
            )
        ]
        lines = [
            table(head, rows),
            f"response {self.response_bytes} bytes (the raw stack serves the gateway's bytes; the gateway answers "
            f"the same bytes again: {self.identical_bytes}); wrk -t{self.raw.threads} -c{self.raw.connections}",
            f"upstream calls: warm-up {self.upstream_warmup}, inside the measured windows {self.upstream_in_windows}",
            f"load generator on the raw stack: wrk used {self.raw.wrk_cpu_share:.0%} of its thread(s) "
            f"({'below saturation' if self.raw.wrk_cpu_share < SATURATED else 'SATURATED: the reference is low'})",
            "server CPU: share of one core during the windows; load CPU ms/req: server CPU over the windows per "
            "request; CPU ms/req: server CPU over sequential requests on one connection (as many to each side, "
            "in alternated blocks), so no request is cut off by the end of a window",
            f"RATIO gateway/raw req/s {self.ratio:.3f} (target >= {TARGET}); CPU per request {self.gateway_cpu_ms:.2f} "
            f"ms vs raw {self.raw_cpu_ms:.3f} ms (under load {self.load_cpu_ms(self.gateway):.3f} vs "
            f"{self.load_cpu_ms(self.raw):.3f} ms)",
        ]
        if self.gateway.non_2xx or self.gateway.socket_errors or self.raw.non_2xx or self.raw.socket_errors:
            lines.append("WARNING: errors during the windows; the numbers above count only 2xx answers")
        return "\n".join(lines)

    def row(self) -> RowResult:
        return RowResult(
            row="1 warm chat screen",
            measured=f"{self.gateway.rps:.0f} req/s, {self.gateway_cpu_ms:.2f} ms CPU/req",
            reference=f"raw {self.raw.rps:.0f} req/s, {self.raw_cpu_ms:.3f} ms CPU/req "
            f"(wrk {self.raw.wrk_cpu_share:.0%})",
            ratio=self.ratio,
            ratio_target=TARGET,
            target=f">= {TARGET} x raw",
            numbers={
                "gateway_rps": self.gateway.rps,
                "raw_rps": self.raw.rps,
                "gateway_cpu_ms_per_request": self.gateway_cpu_ms,
                "raw_cpu_ms_per_request": self.raw_cpu_ms,
                "gateway_load_cpu_ms_per_request": self.load_cpu_ms(self.gateway),
                "raw_load_cpu_ms_per_request": self.load_cpu_ms(self.raw),
                "wrk_cpu_share_on_raw": self.raw.wrk_cpu_share,
                "wrk_cpu_share_on_gateway": self.gateway.wrk_cpu_share,
                "gateway_errors": float(self.gateway.non_2xx + self.gateway.socket_errors),
                "upstream_calls_in_windows": float(self.upstream_in_windows),
                "response_bytes": float(self.response_bytes),
            },
        )


async def cpu_per_request(
    session: aiohttp.ClientSession, server: ServerProcess, body: bytes, expect: bytes, requests: int
) -> float:
    """Server CPU ms per request over `requests` sequential POSTs on one keep-alive connection."""
    url = server.url + "/graphql"
    cpu0 = server.cpu_seconds()
    for _ in range(requests):
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            if await resp.read() != expect:
                raise RuntimeError(f"{url} answered other bytes than the chat screen's")
    return (server.cpu_seconds() - cpu0) * 1000 / requests


async def run_warm(
    *,
    duration: float,
    connections: int,
    rounds: int,
    threads: int = 1,
    cpu_requests: int = 20,
    emulator: ServerProcess | None = None,
) -> WarmReport:
    """Alternate raw/gateway wrk windows `rounds` times, each `duration` s; each side's windows merged. Then
    10 x `cpu_requests` sequential requests to each side, in alternated blocks of `cpu_requests`, for CPU per
    request (as many to each side: a busy machine skews a short sample, and the raw stack's is no longer)."""
    async with (
        emulator_process(emulator) as emulator,
        aiohttp.ClientSession() as session,
        contextlib.AsyncExitStack() as stack,
    ):
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-warm-")))
        response_path, body_path = tmp / "response.json", tmp / "request.json"
        env = gateway_env(emulator.info, cache_ttls=WARM_TTL)
        gateway, raw = await asyncio.gather(  # the raw stack reads its bytes on its first request
            stack.enter_async_context(server_process(["gateway"], env)),
            stack.enter_async_context(server_process(["raw", str(response_path)])),
        )
        body = request_body(emulator.info["conversations"][CONVERSATION])
        body_path.write_bytes(body)
        before = await upstream_calls(session, gateway.url)
        response, _ = await post_query(session, gateway.url, body)  # cold: fills the cache
        warmup_calls = await upstream_calls(session, gateway.url) - before
        again, _ = await post_query(session, gateway.url, body)
        response_path.write_bytes(response)
        async with session.post(raw.url + "/graphql", data=body, headers=JSON_HEADERS) as resp:
            if await resp.read() != response:
                raise RuntimeError("the raw stack does not serve the gateway's bytes")
        script = fixed_post_script("/graphql", body_path, JSON_HEADERS)

        async def window(server: ServerProcess) -> WrkResult:
            url = server.url + "/graphql"
            return await run_wrk(
                url, script, duration=duration, connections=connections, threads=threads, server=server
            )

        raw_runs, gateway_runs, in_windows = [], [], 0
        for _ in range(rounds):
            raw_runs.append(await window(raw))
            before = await upstream_calls(session, gateway.url)
            gateway_runs.append(await window(gateway))
            in_windows += await upstream_calls(session, gateway.url) - before
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as sequential:
            gateway_cpu = raw_cpu = 0.0
            for _ in range(10):
                gateway_cpu += await cpu_per_request(sequential, gateway, body, response, cpu_requests) / 10
                raw_cpu += await cpu_per_request(sequential, raw, body, response, cpu_requests) / 10
    return WarmReport(
        gateway=_merge(gateway_runs),
        raw=_merge(raw_runs),
        response_bytes=len(response),
        identical_bytes=again == response,
        upstream_warmup=warmup_calls,
        upstream_in_windows=in_windows,
        gateway_cpu_ms=gateway_cpu,
        raw_cpu_ms=raw_cpu,
    )
