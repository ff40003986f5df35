"""Shared benchmark plumbing: server subprocesses, CPU and memory of processes, percentiles, row results, tables.

Never talks to anything but 127.0.0.1, and never starts a process that outlives the block that started it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """CPU time a live process has used so far, all its threads (Linux /proc).

    Sums each thread's `schedstat` (nanoseconds) where the kernel has it; `stat`'s utime + stime count in clock
    ticks (10 ms), too coarse for a fan-out that takes a few milliseconds.
    """
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                continue
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    if total_ns:
        return total_ns / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process (Linux /proc)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (never above the hard limit); children inherit it.

    Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    info: dict

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.proc.pid)


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
        line = await asyncio.wait_for(_ready_line(proc, f"bench.servers {args[0]}"), STARTUP_TIMEOUT)
        yield ServerProcess(proc, json.loads(line.removeprefix("READY ")))
    finally:
        await stop_process(proc)


@contextlib.asynccontextmanager
async def emulator_process(shared: ServerProcess | None = None, latency_s: float = 0.0) -> AsyncIterator[ServerProcess]:
    """The emulator subprocess (seeded, no simulator), or `shared` when one is given, its latency set for the block
    and back to 0 afterwards."""
    if shared is None:
        async with server_process(["emulator", "--latency", str(latency_s)]) as emulator:
            yield emulator
        return
    if not latency_s:
        yield shared
        return
    await _set_latency(shared, latency_s)
    try:
        yield shared
    finally:
        await _set_latency(shared, 0.0)


async def _set_latency(emulator: ServerProcess, seconds: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        url = f"{emulator.url}/__bench/latency?seconds={seconds}"
        async with session.post(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"could not set the emulator's latency: {resp.status}")


def emulator_auth(emulator: ServerProcess) -> dict[str, str]:
    """HTTP Basic credentials of the emulator's account, as a header (Twilio's REST authentication)."""
    pair = f"{emulator.info['account_sid']}:{emulator.info['auth_token']}".encode()
    return {"authorization": "Basic " + base64.b64encode(pair).decode()}


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """Close the child's stdin (its signal to exit), wait `grace` seconds, then kill it."""
    if proc.returncode is not None:
        return
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _ready_line(proc: asyncio.subprocess.Process, what: str) -> str:
    while line := (await proc.stdout.readline()).decode():  # type: ignore[union-attr]
        if line.startswith("READY "):
            return line.strip()
    raise RuntimeError(f"{what} exited before READY (status {await proc.wait()})")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(measured: float, reference: float) -> float:
    if not reference or math.isnan(reference) or math.isnan(measured):
        return float("nan")
    return measured / reference


@dataclass
class RowResult:
    """One row of the performance table: a measurement, its same-run reference, their ratio and the target.

    `ratio_target` is the bound the ratio must meet (`ratio_better` says which side is good); `extra_targets` are
    absolute bounds checked besides it (e.g. tasks per request). `skipped` says why a row could not run.
    """

    row: str
    measured: str
    reference: str
    ratio: float = float("nan")
    ratio_target: float | None = None
    ratio_better: str = "higher"  # "higher": ratio >= target is met; "lower": ratio <= target is met
    target: str = ""
    checks: dict[str, bool] = field(default_factory=dict)  # named absolute targets -> met?
    numbers: dict[str, float] = field(default_factory=dict)  # machine-readable figures (for --json and tests)
    skipped: str | None = None

    @property
    def meets(self) -> bool | None:
        if self.skipped is not None:
            return None
        met = list(self.checks.values())
        if self.ratio_target is not None:
            if math.isnan(self.ratio):
                return False
            good = self.ratio >= self.ratio_target if self.ratio_better == "higher" else self.ratio <= self.ratio_target
            met.append(good)
        return all(met) if met else None

    def verdict(self) -> str:
        if self.skipped is not None:
            return "skipped"
        meets = self.meets
        if meets is None:
            return "-"
        if meets:
            return "meets"
        missed = [name for name, ok in self.checks.items() if not ok]
        return "misses" + (f" ({', '.join(missed)})" if missed else "")

    def as_json(self) -> dict:
        return {
            "row": self.row,
            "measured": self.measured,
            "reference": self.reference,
            "ratio": None if math.isnan(self.ratio) else self.ratio,
            "target": self.target,
            "verdict": self.verdict(),
            "checks": self.checks,
            "numbers": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.numbers.items()},
            "skipped": self.skipped,
        }


def summary_table(rows: Sequence[RowResult]) -> str:
    """One line per row; why a row was skipped goes below the table, so the table stays readable."""
    body = []
    notes = []
    for r in rows:
        if r.skipped is not None:
            body.append([r.row, "not available", "", "", r.target, "skipped"])
            notes.append(f"{r.row}: {r.skipped}")
        else:
            shown = "" if math.isnan(r.ratio) else f"{r.ratio:.3f}"
            body.append([r.row, r.measured, r.reference, shown, r.target, r.verdict()])
    lines = [table(["row", "measured", "reference (same run)", "ratio", "target", "verdict"], body)]
    lines.extend(f"skipped - {note}" for note in notes)
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table; floats get two decimals; first column left-aligned, the rest right-aligned."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


@contextlib.asynccontextmanager
async def postgres_database(base_url: str) -> AsyncIterator[str]:
    """A fresh database for one run (created and dropped with psql), or `base_url` itself if it names one."""
    parts = urlsplit(base_url)
    if parts.path.strip("/"):
        yield base_url
        return
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql not found (Debian package postgresql-client) to create the bench database")
    name = f"delivery_gateway_bench_{secrets.token_hex(4)}"
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))

    def run(sql: str) -> None:
        subprocess.run([psql, admin, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True, timeout=30)

    await asyncio.to_thread(run, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        await asyncio.to_thread(run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
