"""The chat-screen benchmarks: warm gateway vs a raw uvicorn app, and cold latency vs ideal upstream round trips.

Never talks to anything but its own loopback subprocesses (emulator, gateway, raw app); every loop is bounded.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.harness import LoadResult, ServerProcess, load, median, percentile, server_process, table

CONVERSATION = "order-1042"  # the seeded 64-message conversation with chat, SMS and WhatsApp participants

CHAT_SCREEN_QUERY = """
query ChatScreen($sid: String!) {
  conversation(sid: $sid) {
    friendlyName
    participants { sid identity channel address lastReadMessageIndex }
    messages(last: 50) {
      edges {
        cursor
        node {
          sid index author body ticks
          delivery { total sent delivered read failed undelivered }
          receipts { sid status errorCode error { name description retryable } channel participant { sid address } }
          recipients { participant { sid identity channel } status source errorCode updatedAt }
        }
      }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}
"""

UPSTREAM_METRIC = "delivery_gateway_upstream_requests_total"
TTL_VARIABLES = (
    "DELIVERY_GATEWAY_TTL_CONVERSATION",
    "DELIVERY_GATEWAY_TTL_PARTICIPANTS",
    "DELIVERY_GATEWAY_TTL_MESSAGES",
    "DELIVERY_GATEWAY_TTL_RECEIPTS",
    "DELIVERY_GATEWAY_TTL_RECEIPTS_TERMINAL",
)


def request_body(conversation_sid: str) -> bytes:
    return json.dumps({"query": CHAT_SCREEN_QUERY, "variables": {"sid": conversation_sid}}).encode()


def gateway_env(emulator: ServerProcess, *, cache_ttls: float | None = None) -> dict[str, str]:
    """Demo-like settings: the emulator upstream, in-memory backends, no auth (demo mode)."""
    env = {
        "TWILIO_ACCOUNT_SID": emulator.info["account_sid"],
        "TWILIO_AUTH_TOKEN": emulator.info["auth_token"],
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": emulator.url,
        "DELIVERY_GATEWAY_STORE_URL": "memory://",
        "DELIVERY_GATEWAY_CACHE_URL": "memory://",
        "DELIVERY_GATEWAY_PUBSUB_URL": "memory://",
        "DELIVERY_GATEWAY_DEMO_MODE": "true",
    }
    if cache_ttls is not None:
        env.update(dict.fromkeys(TTL_VARIABLES, str(cache_ttls)))
    return env


async def upstream_calls(session: aiohttp.ClientSession, gateway_url: str) -> int:
    """Sum of the gateway's upstream-attempt counter, read from /metrics."""
    async with session.get(gateway_url + "/metrics") as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(UPSTREAM_METRIC + "{") or line.startswith(UPSTREAM_METRIC + " "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


async def post_query(session: aiohttp.ClientSession, gateway_url: str, body: bytes) -> tuple[bytes, float]:
    started = time.perf_counter()
    async with session.post(gateway_url + "/graphql", data=body, headers={"content-type": "application/json"}) as r:
        data = await r.read()
        status = r.status
    elapsed = (time.perf_counter() - started) * 1000
    payload = json.loads(data)
    if status != 200 or payload.get("errors") or not payload.get("data", {}).get("conversation"):
        raise RuntimeError(f"chat-screen query failed ({status}): {data[:300]!r}")
    return data, elapsed


# --------------------------------------------------------------------------------------------------- warm


@dataclass
class WarmReport:
    gateway: LoadResult
    raw: LoadResult
    response_bytes: int
    upstream_during_window: int
    upstream_warmup: int
    concurrency: int
    identical_bytes: bool

    @property
    def ratio(self) -> float:
        return self.gateway.rps / self.raw.rps if self.raw.rps else float("nan")

    def render(self) -> str:
        rows = []
        for name, r in (("raw uvicorn (baseline)", self.raw), ("gateway (warm cache)", self.gateway)):
            rows.append(
                [
                    name,
                    f"{r.rps:.0f}",
                    r.p(50),
                    r.p(95),
                    r.p(99),
                    r.requests,
                    r.errors,
                    f"{r.server_cpu_us_per_req:.0f}",
                    f"{r.server_cpu_s / r.seconds * 100:.0f}%",
                ]
            )
        head = [
            "warm chat screen",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "requests",
            "errors",
            "server CPU us/req",
            "server CPU",
        ]
        cpu_ratio = self.raw.server_cpu_us_per_req / self.gateway.server_cpu_us_per_req
        return "\n".join(
            [
                table(head, rows),
                f"response: {self.response_bytes} bytes (raw app returns the gateway's bytes; identical on re-query: "
                f"{self.identical_bytes}); {self.concurrency} keep-alive connections",
                f"upstream calls: warm-up (cold) request {self.upstream_warmup}, measured windows "
                f"{self.upstream_during_window}",
                f"RATIO gateway/raw requests/s: {self.ratio:.3f}   "
                f"(server CPU per request raw/gateway: {cpu_ratio:.3f})",
            ]
        )


def _merge(results: list[LoadResult]) -> LoadResult:
    latencies = sorted(x for r in results for x in r.latencies_ms)
    return LoadResult(
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        sum(r.seconds for r in results),
        latencies,
        sum(r.server_cpu_s for r in results),
        sum(r.client_cpu_s for r in results),
    )


WARM_TTL = 86400.0  # the default TTLs (30-60 s) would expire mid-run and turn the measured window partly cold


async def run_warm(*, duration: float, concurrency: int, rounds: int = 1, max_requests: int = 500_000) -> WarmReport:
    """Alternate raw/gateway windows `rounds` times, each `duration` s; merged per side."""
    async with (
        server_process(["emulator"]) as emulator,
        server_process(["gateway"], gateway_env(emulator, cache_ttls=WARM_TTL)) as gateway,
        aiohttp.ClientSession() as session,
    ):
        body = request_body(emulator.info["conversations"][CONVERSATION])
        before_warmup = await upstream_calls(session, gateway.url)
        response, _ = await post_query(session, gateway.url, body)  # warm-up: fills the cache
        after_warmup = await upstream_calls(session, gateway.url)
        again, _ = await post_query(session, gateway.url, body)
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            body_path = Path(tmp) / "response.json"
            body_path.write_bytes(response)
            async with server_process(["raw", str(body_path)]) as raw:
                raw_results, gw_results, upstream_window = [], [], 0
                for _ in range(rounds):
                    raw_results.append(
                        await load(
                            raw.url + "/graphql",
                            body,
                            concurrency=concurrency,
                            duration=duration,
                            max_requests=max_requests,
                            server=raw,
                            expect=response,
                        )
                    )
                    before = await upstream_calls(session, gateway.url)
                    gw_results.append(
                        await load(
                            gateway.url + "/graphql",
                            body,
                            concurrency=concurrency,
                            duration=duration,
                            max_requests=max_requests,
                            server=gateway,
                        )
                    )
                    upstream_window += await upstream_calls(session, gateway.url) - before
    return WarmReport(
        _merge(gw_results),
        _merge(raw_results),
        len(response),
        upstream_window,
        after_warmup - before_warmup,
        concurrency,
        again == response,
    )


# --------------------------------------------------------------------------------------------------- cold


@dataclass
class ColdReport:
    latency_ms: float
    upstream_concurrency: int
    first_ms: float  # the very first request of a fresh gateway (default TTLs): truly cold
    first_calls: int
    second_ms: float  # the same query again on that gateway: warm
    second_calls: int
    uncached_ms: list[float]  # TTL=0 gateway: every request does the whole upstream fan-out
    uncached_calls: list[int]

    @property
    def receipt_calls(self) -> int:
        return max(self.first_calls - 3, 0)

    @property
    def ideal_ms(self) -> float:
        return 4 * self.latency_ms

    @property
    def achievable_ms(self) -> float:
        waves = math.ceil(self.receipt_calls / self.upstream_concurrency) if self.receipt_calls else 0
        return (3 + waves) * self.latency_ms

    @property
    def ratio(self) -> float:
        return median(self.uncached_ms) / self.ideal_ms if self.ideal_ms else float("nan")

    def render(self) -> str:
        ms = sorted(self.uncached_ms)
        rows = [
            [
                "fresh gateway, 1st request (cold)",
                self.first_ms,
                "",
                "",
                self.first_calls,
                self.first_ms / self.ideal_ms if self.ideal_ms else float("nan"),
            ],
            ["same gateway, 2nd request (warm)", self.second_ms, "", "", self.second_calls, ""],
            [
                f"TTL=0 gateway, {len(ms)} cold requests",
                median(ms),
                percentile(ms, 95),
                max(ms),
                f"{median(self.uncached_calls):.0f}",
                self.ratio,
            ],
        ]
        head = ["cold chat screen", "p50/one ms", "p95 ms", "max ms", "upstream calls", "ratio vs 4×latency"]
        return "\n".join(
            [
                table(head, rows),
                f"upstream latency {self.latency_ms:.0f} ms per call; ideal = 3 sequential round trips + 1 parallel "
                f"wave of receipts = {self.ideal_ms:.0f} ms; with upstream_concurrency={self.upstream_concurrency} "
                f"the {self.receipt_calls} receipt calls need "
                f"{math.ceil(self.receipt_calls / self.upstream_concurrency)}"
                f" wave(s): {self.achievable_ms:.0f} ms",
                f"RATIO cold median / (4 × latency): {self.ratio:.3f}",
            ]
        )


async def run_cold(*, latency: float, iterations: int, upstream_concurrency: int = 32) -> ColdReport:
    concurrency_env = {"DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY": str(upstream_concurrency)}
    async with server_process(["emulator", "--latency", str(latency)]) as emulator:
        sid = emulator.info["conversations"][CONVERSATION]
        body = request_body(sid)
        async with (
            server_process(["gateway"], {**gateway_env(emulator), **concurrency_env}) as fresh,
            server_process(["gateway"], {**gateway_env(emulator, cache_ttls=0), **concurrency_env}) as uncached,
            aiohttp.ClientSession() as session,
        ):
            # Open the client's keep-alive connection first, so no request below pays for our TCP connect.
            await upstream_calls(session, fresh.url)
            counts = [await upstream_calls(session, fresh.url)]
            timings = []
            for _ in range(2):
                _, elapsed = await post_query(session, fresh.url, body)
                timings.append(elapsed)
                counts.append(await upstream_calls(session, fresh.url))
            await upstream_calls(session, uncached.url)
            await post_query(session, uncached.url, body)  # opens the gateway's upstream connections; not counted
            uncached_ms, uncached_calls = [], []
            deadline = time.perf_counter() + 60
            for _ in range(iterations):
                if time.perf_counter() > deadline:
                    break
                before = await upstream_calls(session, uncached.url)
                _, elapsed = await post_query(session, uncached.url, body)
                uncached_ms.append(elapsed)
                uncached_calls.append(await upstream_calls(session, uncached.url) - before)
    return ColdReport(
        latency * 1000,
        upstream_concurrency,
        timings[0],
        counts[1] - counts[0],
        timings[1],
        counts[2] - counts[1],
        uncached_ms,
        uncached_calls,
    )


if __name__ == "__main__":
    print(asyncio.run(run_warm(duration=2, concurrency=8)).render())
    print(asyncio.run(run_cold(latency=0.02, iterations=5)).render())
