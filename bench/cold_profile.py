"""Where a cold chat screen's CPU goes: row 3's request (resource-cache TTLs 0, no response cache, 25 ms of
upstream latency) driven straight into the gateway's ASGI app in this process, so the gateway's CPU time can be
split and profiled without a server process in between. A guide for performance work; judges nothing.

    .venv/bin/python -m bench.cold_profile                 # CPU per request and per phase (medians), 40 requests
    .venv/bin/python -m bench.cold_profile --profile 20    # ... then cProfile over 20 more, top functions
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cold.out \
        .venv/bin/python -m bench.cold_profile --requests 10 --callgrind   # instructions of the 10 requests alone

Phases, in CPU time of this process (the emulator is another process): up to the first upstream call leaving, up to
the first round's last answer, up to the first call of the second round leaving, up to the last receipts answer, and
from the last answer to the response's last byte. Never talks to anything but the loopback emulator subprocess it
starts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.chat_screen import CONVERSATION, request_body
from bench.gateway import API_KEY, gateway_env, in_process_gateway, serving_gc_policy, settings_from_env
from bench.harness import ServerProcess, emulator_process

LATENCY_S = 0.025


class _Clock:
    """process_time() at the first send of an upstream request and at each answer, for the request running now."""

    def __init__(self) -> None:
        self.first_send: float | None = None
        self.sends: list[float] = []
        self.answers: list[float] = []

    def reset(self) -> None:
        self.first_send = None
        self.sends = []
        self.answers = []


def _instrument(http: Any, clock: _Clock) -> Callable[[], None]:
    """Wraps the upstream HTTP client's exchanges (`GatewayHttpClient._attempt`) so the clock sees each call leave
    and answer."""
    original = http._attempt

    async def timed(*args: Any, **kwargs: Any) -> Any:
        if clock.first_send is None:
            clock.first_send = time.process_time()
        clock.sends.append(time.process_time())
        response = await original(*args, **kwargs)
        clock.answers.append(time.process_time())
        return response

    http._attempt = timed

    def undo() -> None:
        del http._attempt

    return undo


async def _post(app: Any, body: bytes) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Bearer {API_KEY}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    data = b"".join(chunks)
    payload = json.loads(data)
    if status != 200 or payload.get("errors") or not (payload.get("data") or {}).get("conversation"):
        raise RuntimeError(f"chat-screen query failed ({status}): {data[:300]!r}")
    return data


BUCKETS = (
    ("delivery_gateway/upstream", "delivery_gateway.upstream"),
    ("delivery_gateway/cache", "delivery_gateway.cache"),
    ("delivery_gateway/graphql", "delivery_gateway.graphql"),
    ("delivery_gateway/", "delivery_gateway (other)"),
    ("strawberry/", "strawberry"),
    ("graphql/", "graphql-core"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "yarl"),
    ("multidict", "multidict"),
    ("prometheus", "prometheus_client"),
    ("starlette/", "starlette"),
    ("aiocache/", "aiocache"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
)


def _buckets(stats: pstats.Stats, out: io.StringIO) -> None:
    """Own time grouped by package (cProfile's per-call overhead inflates code made of many small calls)."""
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        bucket = "C builtins" if filename == "~" else next((n for k, n in BUCKETS if k in filename), "other")
        totals[bucket] = totals.get(bucket, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    out.write("own time by package:\n")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        out.write(f"  {name:<32}{seconds / whole * 100:6.1f}%\n")


def _instrumentation(on: bool) -> None:
    """Callgrind's instrumentation on or off for this process (run under `--instr-atstart=no`)."""
    command = ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())]
    subprocess.run(command, check=True, capture_output=True)


async def run(
    requests: int, profile: int, top: int, callgrind: bool = False, emulator: ServerProcess | None = None
) -> str:
    """The report (module docstring); `emulator` is used (its latency set for the run) instead of starting one."""
    out = io.StringIO()
    async with emulator_process(emulator, latency_s=LATENCY_S) as emulator:
        sid = emulator.info["conversations"][CONVERSATION]
        extra = {"DELIVERY_GATEWAY_RESPONSE_CACHE": "false", "DELIVERY_GATEWAY_RECONCILE_SECONDS": "0"}
        env = gateway_env(emulator.info, cache_ttls=0, extra=extra)
        body = request_body(sid, "ChatScreenCold")
        async with in_process_gateway(settings_from_env(env)) as gateway, asyncio.timeout(3600):
            app = gateway.app
            calls = app.state.gateway.services.upstream.calls
            for _ in range(3):  # connections opened, code paths warm
                await _post(app, body)
            clock = _Clock()
            undo = _instrument(app.state.gateway.services.upstream.http, clock)
            rows: list[tuple[float, ...]] = []
            with serving_gc_policy():
                if callgrind:
                    _instrumentation(True)
                for _ in range(requests):
                    clock.reset()
                    before = len(calls)
                    wall = time.perf_counter()
                    start = time.process_time()
                    await _post(app, body)
                    end = time.process_time()
                    wall = time.perf_counter() - wall
                    made = len(calls) - before
                    first_round = sorted(clock.answers)[2] if len(clock.answers) >= 3 else end
                    last = max(clock.answers) if clock.answers else end
                    assert clock.first_send is not None
                    second = sorted(clock.sends)[3] if len(clock.sends) > 3 else first_round
                    rows.append(
                        (
                            (end - start) * 1000,
                            (clock.first_send - start) * 1000,
                            (first_round - clock.first_send) * 1000,
                            (second - first_round) * 1000,
                            (last - second) * 1000,
                            (end - last) * 1000,
                            wall * 1000,
                            made,
                        )
                    )
                if callgrind:
                    _instrumentation(False)
                undo()
                if not rows:  # --requests 0: the setup alone (callgrind's baseline)
                    return out.getvalue()
                names = (
                    "CPU total",
                    "to first call",
                    "first round",
                    "to second round",
                    "second round",
                    "after last answer",
                    "wall",
                )
                medians = [statistics.median(r[i] for r in rows) for i in range(len(names))]
                out.write(f"{requests} cold requests in-process, {LATENCY_S * 1000:.0f} ms upstream latency, ")
                out.write(f"{rows[0][-1]} upstream calls each; median ms:\n")
                for name, value in zip(names, medians, strict=True):
                    out.write(f"  {name:<20}{value:8.2f}\n")
                if profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for _ in range(profile):
                        await _post(app, body)
                    profiler.disable()
                    stats = pstats.Stats(profiler, stream=out)
                    _buckets(stats, out)
                    stats.sort_stats("tottime").print_stats(top)
                    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--profile", type=int, default=0, help="requests to run under cProfile afterwards")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--callgrind", action="store_true", help="under valgrind --instr-atstart=no: instrument the requests alone"
    )
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - the bench's servers run on uvloop when it is installed
        pass
    print(asyncio.run(run(args.requests, args.profile, args.top, args.callgrind)))


if __name__ == "__main__":
    main()
