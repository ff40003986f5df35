"""`python -m bench [all|warm|cold|http|profile]`: the one command that runs the benchmarks and prints their ratios.

Never asserts performance thresholds and never reaches past loopback; every run is bounded in requests and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

QUICK = {"duration": 2.0, "rounds": 1, "concurrency": 8, "iterations": 5, "http_rounds": 5}
FULL = {"duration": 10.0, "rounds": 2, "concurrency": 16, "iterations": 30, "http_rounds": 20}


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=["all", "warm", "cold", "http", "profile"])
    parser.add_argument("--quick", action="store_true", help="tiny configuration (~20 s for all)")
    parser.add_argument("--duration", type=float, help="warm: seconds per measured window (default 10; quick 2)")
    parser.add_argument("--rounds", type=int, help="warm: raw/gateway window pairs, alternated (default 2; quick 1)")
    parser.add_argument("--concurrency", type=int, help="warm: keep-alive connections (default 16; quick 8)")
    parser.add_argument("--max-requests", type=int, default=500_000, help="warm: cap per window")
    parser.add_argument("--latency", type=float, default=20.0, help="cold: emulator latency per call, ms")
    parser.add_argument("--iterations", type=int, help="cold: uncached requests (default 30; quick 5)")
    parser.add_argument("--upstream-concurrency", type=int, default=32, help="cold: the gateway's setting")
    parser.add_argument("--parallel", type=int, default=50, help="http: parallel GETs per round")
    parser.add_argument("--http-rounds", type=int, help="http: warm rounds (default 20; quick 5)")
    parser.add_argument("--profile-requests", type=int, default=20, help="profile: warm requests profiled")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


async def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the selected benchmarks, print each one's report, return {ratio name: value}."""
    from bench import chat_screen, http_clients

    ratios: dict[str, float] = {}
    which = {"warm", "cold", "http"} if args.which == "all" else {args.which}
    if "warm" in which:
        print(
            f"\n== warm chat screen vs raw uvicorn ({args.rounds}×{args.duration:g} s per side, "
            f"{args.concurrency} connections)",
            flush=True,
        )
        warm = await chat_screen.run_warm(
            duration=args.duration, concurrency=args.concurrency, rounds=args.rounds, max_requests=args.max_requests
        )
        print(warm.render(), flush=True)
        ratios["warm gateway/raw req/s"] = warm.ratio
        ratios["warm upstream calls in window"] = float(warm.upstream_during_window)
    if "cold" in which:
        print(
            f"\n== cold chat screen, emulator latency {args.latency:g} ms ({args.iterations} uncached requests)",
            flush=True,
        )
        cold = await chat_screen.run_cold(
            latency=args.latency / 1000, iterations=args.iterations, upstream_concurrency=args.upstream_concurrency
        )
        print(cold.render(), flush=True)
        ratios["cold median/(4×latency)"] = cold.ratio
    if "http" in which:
        print(f"\n== HTTP clients ({args.parallel} parallel GETs, {args.http_rounds} warm rounds)", flush=True)
        results = await http_clients.measure(args.parallel, args.http_rounds)
        print(http_clients.render(results, args.parallel, args.http_rounds), flush=True)
        ratios.update({f"http {k}": v for k, v in http_clients.ratios(results).items()})
    if "profile" in which:
        from bench.profile_warm import profile_warm

        print("\n== profile of warm chat-screen requests", flush=True)
        print(await profile_warm(args.profile_requests), flush=True)
    return ratios


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    print(f"delivery-gateway benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"command: python -m bench {shlex.join(argv)}".rstrip())
    started = time.perf_counter()
    ratios = asyncio.run(run(args))
    if ratios:
        print("\n== ratios (against the baseline measured in this run)")
        for name, value in ratios.items():
            print(f"  {name:<58}{value:8.3f}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
