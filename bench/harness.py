"""Shared benchmark plumbing: server subprocesses, a bounded aiohttp load loop, percentiles, CPU time, tables.

Never talks to anything but 127.0.0.1, and never runs a loop without both a request cap and a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    info: dict

    @property
    def url(self) -> str:
        return self.info["url"]

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextlib.asynccontextmanager
async def server_process(args: Sequence[str], env: Mapping[str, str] | None = None) -> AsyncIterator[ServerProcess]:
    """`python -m bench.servers *args` until the block exits; closing its stdin makes it stop by itself."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.servers",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(_ready_line(proc), STARTUP_TIMEOUT)
        yield ServerProcess(proc, json.loads(line.removeprefix("READY ")))
    finally:
        if proc.returncode is None:
            proc.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _ready_line(proc: asyncio.subprocess.Process) -> str:
    while line := (await proc.stdout.readline()).decode():  # type: ignore[union-attr]
        if line.startswith("READY "):
            return line.strip()
    raise RuntimeError(f"server exited before READY (status {await proc.wait()})")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def server_cpu_us_per_req(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")


async def load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration: float,
    max_requests: int = 1_000_000,
    server: ServerProcess | None = None,
    expect: bytes | None = None,
) -> LoadResult:
    """`concurrency` keep-alive connections POSTing `body` for `duration` s (or `max_requests`), whichever first.

    Connections are opened (one request each) before the window; only the window is timed and counted.
    """
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> bool:
            async with session.post(url, data=body, headers=headers) as resp:
                data = await resp.read()
                return resp.status == 200 and (expect is None or data == expect)

        await asyncio.gather(*(one() for _ in range(concurrency)))  # open every connection
        issued = 0
        deadline = 0.0

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    ok = await one()
                except aiohttp.ClientError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        cpu0 = server.cpu_seconds() if server else 0.0
        client0 = time.process_time()
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), duration + 30)
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client0
        server_cpu = (server.cpu_seconds() - cpu0) if server else 0.0
    latencies.sort()
    return LoadResult(len(latencies), errors, seconds, latencies, server_cpu, client_cpu)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table; floats get two decimals; first column left-aligned, the rest right-aligned."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values))

    return "\n".join([line(headers), *(line(r) for r in cells)])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
