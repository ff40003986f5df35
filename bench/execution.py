"""Row 2: warm execution of the chat screen when no response cache answers, against plain Strawberry.

The gateway's schema is executed in this process with a fresh request context each time (warm resource cache, so
no upstream call), the way its HTTP view would; the reference is `bench.plain_schema` executing the same query
synchronously over the gateway's own answer. Counts come from `bench.counters` in a separate pass (the field
counter slows execution down), times from passes without it.

Times come in pairs of short blocks, one block per side, back to back, the side that goes first alternating from
pair to pair; the ratio is the median of the pairs' ratios. Other processes sharing the machine slow both blocks of
a pair alike (they run within a second of each other), so a busy stretch moves a pair's ratio far less than it moves
either side's own median, which a few long blocks taken minutes apart each compared. Never asserts a threshold.
"""

from __future__ import annotations

import contextlib
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.chat_screen import CHAT_SCREEN_QUERY, CONVERSATION, OPERATION
from bench.counters import OperationCounts, count_gc, count_operation
from bench.gateway import (
    GEN0_THRESHOLD,
    WARM_TTL,
    gateway_env,
    in_process_gateway,
    serving_gc_policy,
    settings_from_env,
)
from bench.harness import RowResult, ServerProcess, emulator_process, median, ratio, table
from bench.plain_schema import PlainChatScreen

TARGET = 1.1  # gateway time per execution <= 1.1 x plain Strawberry
MAX_TASKS = 10  # asyncio tasks per request


@dataclass
class Timing:
    wall_ms: list[float]  # per block of executions: mean wall ms per execution
    cpu_ms: list[float]
    executions: int
    gc: OperationCounts  # collections during the timed blocks

    @property
    def ms(self) -> float:
        return median(self.wall_ms)

    @property
    def cpu(self) -> float:
        return median(self.cpu_ms)


@dataclass
class ExecutionReport:
    gateway: Timing
    plain: Timing
    gateway_counts: OperationCounts
    plain_counts: OperationCounts
    response_bytes: int
    same_response: bool
    upstream_calls_timed: int
    serving_gc: bool = True

    @property
    def pair_ratios(self) -> list[float]:
        """Gateway/plain CPU time per execution of each pair of blocks (measured back to back)."""
        return [ratio(g, p) for g, p in zip(self.gateway.cpu_ms, self.plain.cpu_ms, strict=True)]

    @property
    def ratio(self) -> float:
        """The median pair's ratio of CPU time per execution (see the module docstring)."""
        return median(self.pair_ratios)

    @property
    def ratio_spread(self) -> tuple[float, float]:
        """The pairs' ratios at the first and third quartiles (the lowest and highest with fewer than 4 pairs)."""
        values = sorted(self.pair_ratios)
        if not values:
            return float("nan"), float("nan")
        if len(values) < 4:
            return values[0], values[-1]
        q1, _, q3 = statistics.quantiles(values, n=4)
        return q1, q3

    def render(self) -> str:
        def row(name: str, t: Timing, c: OperationCounts) -> list[object]:
            per = t.executions or 1
            gcs = "/".join(str(n) for n in t.gc.gc_collections)
            return [
                name,
                t.ms,
                t.cpu,
                c.fields,
                c.resolvers,
                c.async_resolvers,
                c.tasks,
                c.loader_loads,
                f"{gcs} in {t.executions}",
                f"{t.gc.gc_seconds * 1000 / per:.2f}",
            ]

        head = [
            "execution",
            "wall ms/exec",
            "CPU ms/exec",
            "fields",
            "resolvers",
            "async",
            "tasks",
            "loads",
            "GC gen0/1/2",
            "GC ms/exec",
        ]
        top_tasks = ", ".join(f"{n} {name}" for name, n in self.gateway_counts.tasks_by_coroutine.most_common(4))
        top_loads = ", ".join(f"{n} {name}" for name, n in self.gateway_counts.loads_by_loader.most_common(4))
        top_resolvers = ", ".join(f"{n} {f}" for f, n in self.gateway_counts.resolvers_by_field.most_common(6))
        gen2 = self.gateway.gc.gc_collections[2]
        pairs = len(self.pair_ratios)
        every = f"every {self.gateway.executions / gen2:.0f} executions" if gen2 else "none in the timed runs"
        return "\n".join(
            [
                table(
                    head,
                    [
                        row("plain Strawberry, sync (reference)", self.plain, self.plain_counts),
                        row("gateway schema, warm cache", self.gateway, self.gateway_counts),
                    ],
                ),
                f"same response: {self.same_response} ({self.response_bytes} bytes); upstream calls during the timed "
                f"executions: {self.upstream_calls_timed}; GC gen2 on the gateway: {every}",
                "GC policy of both sides: "
                + (
                    f"serve's (start-up heap frozen, gen0 threshold {GEN0_THRESHOLD})"
                    if self.serving_gc
                    else "CPython's defaults"
                ),
                f"gateway tasks by coroutine: {top_tasks or '-'}",
                f"gateway loads by loader: {top_loads or '-'}",
                f"gateway resolvers by field: {top_resolvers or '-'}",
                f"pairs of blocks: {pairs} x {self.gateway.executions // max(pairs, 1)} executions per side; the "
                f"pairs' ratios, first to third quartile: {self.ratio_spread[0]:.2f}-{self.ratio_spread[1]:.2f}",
                f"RATIO gateway/plain CPU time per execution {self.ratio:.2f} (median pair; target <= {TARGET}); tasks "
                f"per request {self.gateway_counts.tasks} (target <= {MAX_TASKS})",
            ]
        )

    def row(self) -> RowResult:
        c = self.gateway_counts
        return RowResult(
            row="2 warm execution, cache miss",
            measured=f"{self.gateway.cpu:.1f} ms; {c.tasks} tasks, {c.loader_loads} loads, {c.resolvers} resolvers",
            reference=f"plain Strawberry {self.plain.cpu:.1f} ms",
            ratio=self.ratio,
            ratio_target=TARGET,
            ratio_better="lower",
            target=f"<= {TARGET} x plain; <= {MAX_TASKS} tasks",
            checks={f"<= {MAX_TASKS} tasks": c.tasks <= MAX_TASKS},
            numbers={
                "gateway_cpu_ms": self.gateway.cpu,
                "plain_cpu_ms": self.plain.cpu,
                "gateway_wall_ms": self.gateway.ms,
                "plain_wall_ms": self.plain.ms,
                "fields": float(c.fields),
                "plain_fields": float(self.plain_counts.fields),
                "resolvers": float(c.resolvers),
                "async_resolvers": float(c.async_resolvers),
                "tasks": float(c.tasks),
                "loader_loads": float(c.loader_loads),
                "gc_gen2_per_execution": self.gateway.gc.gc_collections[2] / max(self.gateway.executions, 1),
                "same_response": float(self.same_response),
                "upstream_calls_timed": float(self.upstream_calls_timed),
            },
        )


async def _block(run: Callable[[], Awaitable[Any]], executions: int, timing: Timing) -> None:
    """One timed block of `executions` runs, added to `timing` (GC counted inside the block only)."""
    with count_gc(timing.gc):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(executions):
            await run()
        timing.wall_ms.append((time.perf_counter() - w0) * 1000 / executions)
        timing.cpu_ms.append((time.process_time() - c0) * 1000 / executions)
    timing.executions += executions


async def _emulator_calls(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/__bench/timeline") as resp:
        return len(await resp.json())


@contextlib.contextmanager
def _gc_policy(serving: bool) -> Iterator[None]:
    if not serving:
        yield
        return
    with serving_gc_policy():
        yield


async def run_execution(
    *,
    executions: int,
    blocks: int = 3,
    warmup: int = 3,
    emulator: ServerProcess | None = None,
    serving_gc: bool = True,
) -> ExecutionReport:
    """`blocks` pairs of blocks of `executions` per side, each pair's first side alternating; the ratio is the median
    pair's, each side's time its median block's mean.

    With `serving_gc` (the default) the process runs under the garbage-collector policy `serve` applies once
    started (a frozen start-up heap, a young-generation threshold of GEN0_THRESHOLD), for both sides alike."""
    async with emulator_process(emulator) as emulator, aiohttp.ClientSession() as session:
        env = gateway_env(emulator.info, cache_ttls=WARM_TTL, extra={"DELIVERY_GATEWAY_DEMO_MODE": "true"})
        sid = emulator.info["conversations"][CONVERSATION]
        variables = {"sid": sid}
        async with in_process_gateway(settings_from_env(env)) as gateway:
            with _gc_policy(serving_gc):

                async def gateway_once() -> Any:
                    result = await gateway.execute(CHAT_SCREEN_QUERY, variables, OPERATION)
                    if result.errors:
                        raise RuntimeError(f"gateway execution failed: {result.errors[0]}")
                    return result

                first = await gateway_once()  # cold: fills the resource cache
                plain = PlainChatScreen(sid, first.data, CHAT_SCREEN_QUERY, OPERATION)

                async def plain_once() -> Any:
                    return plain.execute()

                plain_data = json.dumps(plain.execute().data, sort_keys=True)
                gateway_data = json.dumps((await gateway_once()).data, sort_keys=True)
                for _ in range(warmup):
                    await gateway_once()
                    plain.execute()
                with count_operation(gateway.schema) as gateway_counts:
                    await gateway_once()
                with count_operation(plain.schema) as plain_counts:
                    plain.execute()
                gc.collect()
                await _emulator_calls(session, emulator.url)  # forget the calls so far
                gateway_timing = Timing([], [], 0, OperationCounts())
                plain_timing = Timing([], [], 0, OperationCounts())
                for pair in range(blocks):
                    if pair % 2:
                        await _block(plain_once, executions, plain_timing)
                        await _block(gateway_once, executions, gateway_timing)
                    else:
                        await _block(gateway_once, executions, gateway_timing)
                        await _block(plain_once, executions, plain_timing)
                upstream = await _emulator_calls(session, emulator.url)
    return ExecutionReport(
        gateway=gateway_timing,
        plain=plain_timing,
        gateway_counts=gateway_counts,
        plain_counts=plain_counts,
        response_bytes=len(json.dumps({"data": first.data}, separators=(",", ":"))),
        same_response=plain_data == gateway_data,
        upstream_calls_timed=upstream,
        serving_gc=serving_gc,
    )
