"""`python -m bench [ROW ...]`: the one command that measures every row of the performance table against its
reference measured in the same run, and prints measured value, reference, ratio and target for each.

Never asserts a threshold (a miss is reported, not raised) and never reaches past loopback; every load loop is
bounded in requests and time. Fails with one line when a tool it needs (wrk) is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.harness import RowResult, ServerProcess, emulator_process, summary_table
from bench.wrk import WrkMissing, require_wrk

ROWS = ("warm", "execution", "cold", "fanout", "ingest", "replicas")
EXTRAS = ("http", "profile")
ALIASES = {str(i + 1): name for i, name in enumerate(ROWS)}
NEEDS_WRK = {"warm", "ingest"}

# Defaults per mode; an explicit option always wins.
FULL = {
    "duration": 10.0,
    "rounds": 2,
    "cpu_requests": 50,
    "executions": 10,
    "blocks": 25,
    "iterations": 30,
    "subscribers": "1000,10000",
    "events": 5,
    "replica_events": 20,
    "http_rounds": 20,
}
QUICK = {
    "duration": 5.0,
    "rounds": 1,
    "cpu_requests": 20,
    "executions": 5,
    "blocks": 4,
    "iterations": 8,
    "subscribers": "200",
    "events": 3,
    "replica_events": 5,
    "http_rounds": 5,
}
PACKAGES = ("strawberry-graphql", "graphql-core", "starlette", "uvicorn", "aiohttp", "redis", "websockets")


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def machine() -> list[str]:
    """The machine and software a run measured, for BENCHMARKS.md."""
    cpu = _lscpu()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    model = cpu.get("Model name") or platform.processor() or "?"
    if "CPU family" in cpu:
        model += f" (family {cpu['CPU family']}, model {cpu.get('Model', '?')})"
    cores = (
        f"{cpu.get('CPU(s)', os.cpu_count())} CPUs ({cpu.get('Socket(s)', '?')} socket(s) x "
        f"{cpu.get('Core(s) per socket', '?')} core(s) x {cpu.get('Thread(s) per core', '?')} thread(s))"
    )
    caches = ", ".join(f"{name} {cpu[name]}" for name in ("L2 cache", "L3 cache") if name in cpu)
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    try:
        wrk = subprocess.run([require_wrk(), "-v"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    except (WrkMissing, OSError, IndexError, subprocess.SubprocessError):
        wrk = "not installed"
    return [
        f"cpu: {model}; {cores}; {caches}; {cpu.get('Hypervisor vendor', 'no hypervisor reported')} guest",
        f"memory: {mem_kb / 1024 / 1024:.1f} GiB; {platform.system()} {platform.release()}; "
        f"SQLite {sqlite3.sqlite_version}; Redis server {_redis_version()}",
        f"python {platform.python_version()}; " + ", ".join(versions) + f"; wrk {wrk}",
    ]


def _redis_version(url: str = "redis://127.0.0.1:6379/0") -> str:
    try:
        import redis

        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            return str(client.info("server").get("redis_version", "?"))
    except Exception:
        return "not reachable"


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="*",
        default=["all"],
        metavar="ROW",
        help=f"all (default), one or more of {', '.join(ROWS)} (or 1-6), or an extra: {', '.join(EXTRAS)}",
    )
    parser.add_argument("--quick", action="store_true", help="short run of every row (about a minute)")
    parser.add_argument("--json", type=Path, help="also write the rows' results to this file")
    parser.add_argument("--duration", type=float, help="warm, ingest: seconds per wrk window (10; quick 5)")
    parser.add_argument("--rounds", type=int, help="warm: raw/gateway window pairs, alternated (2; quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="warm, ingest: wrk connections (32)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--cpu-requests",
        type=int,
        help="warm: sequential requests per block for CPU per request, 10 alternated blocks per side (50; quick 20)",
    )
    parser.add_argument("--executions", type=int, help="execution: executions per timed block (10; quick 5)")
    parser.add_argument(
        "--blocks",
        type=int,
        help="execution: pairs of timed blocks, one per side back to back, the first side alternating; the ratio "
        "is the median pair's (25; quick 4)",
    )
    parser.add_argument("--latency", type=float, default=25.0, help="cold: emulator latency per call, ms (25)")
    parser.add_argument("--iterations", type=int, help="cold: uncached requests (30; quick 8)")
    parser.add_argument("--upstream-concurrency", type=int, help="cold: override the gateway's setting")
    parser.add_argument("--subscribers", help="fanout: comma-separated sizes (1000,10000; quick 200)")
    parser.add_argument("--events", type=int, help="fanout: measured events per size (5; quick 3)")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432",
        help="ingest: PostgreSQL server for the second row ('none' to skip); a fresh database is created per run "
        "unless the URL names one",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="replicas: Redis for pub/sub")
    parser.add_argument(
        "--replica-store-url",
        help="replicas: shared store URL (default: a fresh PostgreSQL database on 127.0.0.1, dropped afterwards)",
    )
    parser.add_argument("--replica-events", type=int, help="replicas: measured events (20; quick 5)")
    parser.add_argument("--parallel", type=int, default=50, help="http: parallel GETs per round")
    parser.add_argument("--http-rounds", type=int, help="http: warm rounds (20; quick 5)")
    parser.add_argument("--profile-executions", type=int, default=20, help="profile: warm executions profiled")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    selected: list[str] = []
    for name in args.which:
        name = ALIASES.get(name, name)
        if name == "all":
            selected.extend(ROWS)
        elif name in ROWS or name in EXTRAS:
            selected.append(name)
        else:
            parser.error(f"unknown row {name!r}: choose from all, {', '.join(ROWS)}, 1-6, {', '.join(EXTRAS)}")
    args.selected = list(dict.fromkeys(selected))
    return args


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


async def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> list[RowResult]:
    """Run the selected rows in table order, print each one's report, return their results.

    One emulator serves every row that needs one (the cold row turns its latency up for itself).
    """
    needs_emulator = set(args.selected) - {"ingest", "http"}
    async with contextlib.AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(emulator_process()) if needs_emulator else None
        return await _run_rows(args, out, emulator)


async def _run_rows(
    args: argparse.Namespace, out: Callable[[str], None], emulator: ServerProcess | None
) -> list[RowResult]:
    rows: list[RowResult] = []
    selected = args.selected
    if "warm" in selected:
        from bench.warm import run_warm

        _section(
            f"1. warm chat screen vs the raw stack (wrk, {args.connections} connections, "
            f"{args.rounds} x {args.duration:g} s per side)"
        )
        report = await run_warm(
            duration=args.duration,
            connections=args.connections,
            rounds=args.rounds,
            threads=args.wrk_threads,
            cpu_requests=args.cpu_requests,
            emulator=emulator,
        )
        out(report.render())
        rows.append(report.row())
    if "execution" in selected:
        from bench.execution import run_execution

        _section(f"2. warm execution, no response cache, vs plain Strawberry ({args.blocks} x {args.executions} each)")
        report = await run_execution(executions=args.executions, blocks=args.blocks, emulator=emulator)
        out(report.render())
        rows.append(report.row())
    if "cold" in selected:
        from bench.cold import run_cold

        _section(f"3. cold chat screen, {args.latency:g} ms upstream latency, vs a bare two-round client")
        report = await run_cold(
            latency_ms=args.latency,
            iterations=args.iterations,
            upstream_concurrency=args.upstream_concurrency,
            emulator=emulator,
        )
        out(report.render())
        rows.append(report.row())
    if "fanout" in selected:
        from bench.fanout import run_fanout

        sizes = _sizes(args.subscribers)
        _section(f"4. webhook -> WebSocket subscribers ({', '.join(map(str, sizes))}), vs a raw WebSocket send")
        for report in await run_fanout(sizes=sizes, events=args.events, emulator=emulator):
            out(report.render())
            rows.append(report.row())
    if "ingest" in selected:
        from bench.ingest import render, run_ingest

        _section(f"5. signed webhook ingest into the ledger (wrk, {args.connections} connections, {args.duration:g} s)")
        postgres = None if args.postgres_url.lower() == "none" else args.postgres_url
        reports = await run_ingest(duration=args.duration, connections=args.connections, postgres_url=postgres)
        out(render(reports))
        rows.extend(r.row() for r in reports)
    if "replicas" in selected:
        from bench.replicas import run_replicas

        _section("6. cross-replica delivery on PostgreSQL + Redis (webhook into A; subscribers on A and B)")
        report = await run_replicas(
            events=args.replica_events,
            redis_url=args.redis_url,
            store_url=args.replica_store_url,
            emulator=emulator,
        )
        out(report.render())
        rows.append(report.row())
    if "http" in selected:
        from bench import http_clients

        _section(f"extra: HTTP clients ({args.parallel} parallel GETs, {args.http_rounds} warm rounds)")
        results = await http_clients.measure(args.parallel, args.http_rounds)
        out(http_clients.render(results, args.parallel, args.http_rounds))
    if "profile" in selected:
        from bench.profile_warm import profile_warm

        _section("extra: profile of warm chat-screen executions (no response cache)")
        out(await profile_warm(args.profile_executions, emulator=emulator))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if NEEDS_WRK & set(args.selected):
        try:
            require_wrk()
        except WrkMissing as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    print(f"delivery-gateway benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for line in machine():
        print(line)
    print(f"command: python -m bench {shlex.join(argv)}".rstrip())
    started = time.perf_counter()
    rows = asyncio.run(run(args))
    if rows:
        _section("summary (each ratio against its reference measured in this run)")
        print(summary_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
