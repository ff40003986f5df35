"""cProfile of warm chat-screen executions: the gateway's schema executed in-process (warm resource cache, no
response cache, no HTTP), with own time grouped by package and the top functions; a guide for performance work.

Never measures throughput (profiling distorts it) and never talks to anything but its loopback emulator subprocess.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import time
from collections import defaultdict

from bench.chat_screen import CHAT_SCREEN_QUERY, CONVERSATION, OPERATION
from bench.counters import count_operation
from bench.gateway import WARM_TTL, gateway_env, in_process_gateway, settings_from_env
from bench.harness import ServerProcess, emulator_process

# Where a frame's file lives -> the bucket its own (tottime) time is charged to; first match wins.
BUCKETS = (
    ("delivery_gateway/", "delivery_gateway (our code)"),
    ("strawberry/", "strawberry"),
    ("graphql/", "graphql-core"),
    ("starlette/", "starlette"),
    ("pydantic", "pydantic"),
    ("aiocache/", "aiocache"),
    ("json/", "json"),
    ("asyncio/", "asyncio (scheduling)"),
    ("dataclasses", "dataclasses"),
    ("enum", "enum"),
)


def _bucket(filename: str) -> str:
    if filename == "~":
        return "C builtins (isinstance, dict/list methods, ...)"
    for needle, name in BUCKETS:
        if needle in filename:
            return name
    return "other"


async def profile_warm(executions: int = 20, top: int = 25, emulator: ServerProcess | None = None) -> str:
    async with emulator_process(emulator) as emulator:
        env = gateway_env(emulator.info, cache_ttls=WARM_TTL, extra={"DELIVERY_GATEWAY_DEMO_MODE": "true"})
        variables = {"sid": emulator.info["conversations"][CONVERSATION]}
        async with in_process_gateway(settings_from_env(env)) as gateway:
            for _ in range(3):  # the first fills the cache; the others warm up
                await gateway.execute(CHAT_SCREEN_QUERY, variables, OPERATION)
            with count_operation(gateway.schema) as counts:
                await gateway.execute(CHAT_SCREEN_QUERY, variables, OPERATION)
            started = time.perf_counter()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(executions):
                await gateway.execute(CHAT_SCREEN_QUERY, variables, OPERATION)
            profiler.disable()
            elapsed = (time.perf_counter() - started) / executions * 1000
    stats = pstats.Stats(profiler)
    by_bucket: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, _funcname), (_cc, _ncalls, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_bucket[_bucket(filename)] += tottime
        total += tottime
    out = io.StringIO()
    out.write(f"{executions} warm executions in-process: {elapsed:.1f} ms each under cProfile\n")
    out.write(f"per execution: {counts.summary()}\n")
    out.write("own time by package:\n")
    for name, seconds in sorted(by_bucket.items(), key=lambda kv: -kv[1]):
        out.write(f"  {name:<50}{seconds / total * 100:6.1f}%\n")
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    print(asyncio.run(profile_warm()))
