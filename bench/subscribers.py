"""The parent side of `bench.ws_clients`: spreads N WebSocket subscribers over client processes and collects, per
event marker, when each subscriber received it, and the client processes' CPU.

Never leaves a client process behind (each exits when its stdin closes, and is killed after a grace period), and
never waits on one without a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from bench.harness import ROOT, stop_process

READY_TIMEOUT_BASE = 30.0
READY_TIMEOUT_PER_SUBSCRIBER = 0.01


@dataclass
class Arrivals:
    times: list[float | None]  # per subscriber, in the processes' order; None: not received before the timeout
    client_cpu_s: float  # all client processes, cumulative since they started
    sample: str | None  # one frame as received (the whole graphql-transport-ws message)
    closed: int
    errors: list[str]

    @property
    def received(self) -> int:
        return sum(t is not None for t in self.times)


class SubscriberFleet:
    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs
        self.connect_seconds = 0.0

    async def _ask(self, proc: asyncio.subprocess.Process, command: dict, within_s: float) -> dict:
        proc.stdin.write((json.dumps(command) + "\n").encode())  # type: ignore[union-attr]
        await proc.stdin.drain()  # type: ignore[union-attr]
        line = await asyncio.wait_for(proc.stdout.readline(), within_s)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"subscriber process exited (status {await proc.wait()})")
        return json.loads(line)

    async def client_cpu_seconds(self) -> float:
        """CPU the client processes have used so far, together."""
        answers = await asyncio.gather(*(self._ask(p, {"cmd": "stats"}, 30.0) for p in self.procs))
        return sum(a["cpu"] for a in answers)

    async def arrivals(self, marker: str, within_s: float) -> Arrivals:
        """When each subscriber got a frame containing `marker` (waits at most `within_s` seconds)."""
        command = {"cmd": "await", "marker": marker, "timeout": within_s}
        answers = await asyncio.gather(*(self._ask(p, command, within_s + 30) for p in self.procs))
        return Arrivals(
            times=[t for a in answers for t in a["times"]],
            client_cpu_s=sum(a["cpu"] for a in answers),
            sample=next((a["sample"] for a in answers if a.get("sample")), None),
            closed=sum(a["closed"] for a in answers),
            errors=[e for a in answers for e in a["first_errors"]],
        )


@contextlib.asynccontextmanager
async def subscriber_fleet(
    urls: Sequence[str],
    count: int,
    *,
    init: dict,
    subscribe: dict,
    processes: int = 1,
) -> AsyncIterator[SubscriberFleet]:
    """`count` subscribers over `processes` client processes, connection i going to urls[i % len(urls)] within
    each process; yields once all are subscribed. Fails (one line) if any connection failed."""
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for share in (s for s in shares if s):
            argv = [sys.executable, "-m", "bench.ws_clients", "--count", str(share)]
            for url in urls:
                argv += ["--url", url]
            argv += ["--init", json.dumps(init), "--subscribe", json.dumps(subscribe)]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26
                )
            )
        timeout = READY_TIMEOUT_BASE + READY_TIMEOUT_PER_SUBSCRIBER * count
        readies = await asyncio.gather(*(asyncio.wait_for(p.stdout.readline(), timeout) for p in procs))  # type: ignore[union-attr]
        fleet = SubscriberFleet(procs)
        for line in readies:
            if not line:
                raise RuntimeError("a subscriber process exited before it was ready")
            ready = json.loads(line)
            if ready["failed"]:
                raise RuntimeError(
                    f"{ready['failed']} of {ready['failed'] + ready['connected']} subscribers could not connect: "
                    f"{ready['first_failures']}"
                )
            fleet.connect_seconds = max(fleet.connect_seconds, ready["seconds"])
        yield fleet
    finally:
        await asyncio.gather(*(stop_process(p, grace=15.0) for p in procs))
