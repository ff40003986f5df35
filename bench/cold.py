"""Row 3: the cold chat screen under upstream latency, against a bare client making exactly two dependent rounds.

Every gateway request is cold: resource-cache TTLs are 0 ("do not cache") and the response cache is off
(DELIVERY_GATEWAY_RESPONSE_CACHE=false), so every request makes all its Twilio calls. The document is the one a chat
screen sends every time (a server has parsed and validated it before, as in production); a second gateway row sends
a document the server has never seen (a new operation name per request) and shows what parsing and validation add.
The floor is a bare aiohttp client against the same emulator in the same run: conversation + participants +
messages page together, then every receipts list at once.
The emulator's request timeline (recorded by the bench's wrapper, `bench.servers.RequestTimeline`) gives the calls
and the sequential waves of each request. Never asserts a threshold; every loop has a count and a deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass, field, fields

import aiohttp

from bench.chat_screen import CONVERSATION, post_query, request_body
from bench.gateway import gateway_env
from bench.harness import (
    RowResult,
    ServerProcess,
    emulator_auth,
    emulator_process,
    median,
    percentile,
    ratio,
    server_process,
    table,
)

TARGET = 1.25  # gateway <= 1.25 x max(2 x latency, floor)
DEADLINE = 120.0  # seconds for all iterations together


def wave_groups(timeline: list[list], gap: float = 0.0) -> list[list[list]]:
    """The requests of a list of [start, end, method, path] requests (seconds), split into sequential waves.

    A request opens a new wave when it starts after a request of the current wave has already answered (so it
    could have waited for that answer: a dependent round, or a concurrency limit releasing a slot) and more than
    `gap` seconds after the previous request started. The gap keeps one burst together when the server itself
    is slow to take up the last requests of a burst of fifty.
    """
    waves: list[list[list]] = []
    first_end = float("-inf")
    previous_start = float("-inf")
    for entry in sorted(timeline):
        start, end = entry[0], entry[1]
        if not waves or (start >= first_end and start - previous_start > gap):
            waves.append([entry])
            first_end = end
        else:
            waves[-1].append(entry)
            first_end = min(first_end, end)
        previous_start = start
    return waves


def count_waves(timeline: list[list], gap: float = 0.0) -> int:
    """Sequential waves in a list of [start, end, method, path] requests (seconds): see `wave_groups`."""
    return len(wave_groups(timeline, gap))


@dataclass(frozen=True)
class Phases:
    """Where one request's time went around its upstream calls (ms), from the emulator's timeline and the client's
    own clock (both CLOCK_MONOTONIC): before its first call, between the first wave's last answer and the next
    wave's first call, from the first to the last call start of the later waves (a burst the caller sends slowly
    splits into an extra wave once the first answers come back), and from the last answer to the response."""

    before_first_call: float
    between_rounds: float
    later_starts_spread: float
    after_last_answer: float


NO_PHASES = Phases(*(float("nan"),) * 4)


def phases(timeline: list[list], sent: float, answered: float, gap: float = 0.0) -> Phases:
    """The `Phases` of one request sent at `sent` and answered at `answered` (seconds, CLOCK_MONOTONIC)."""
    waves = wave_groups(timeline, gap)
    if not waves:
        return NO_PHASES
    first = waves[0]
    later = [entry for wave in waves[1:] for entry in wave]
    ms = 1000.0
    return Phases(
        before_first_call=(first[0][0] - sent) * ms,
        between_rounds=(later[0][0] - max(e[1] for e in first)) * ms if later else float("nan"),
        later_starts_spread=(later[-1][0] - later[0][0]) * ms if later else float("nan"),
        after_last_answer=(answered - max(e[1] for e in timeline)) * ms,
    )


@dataclass
class Sample:
    ms: float
    calls: int
    waves: int
    peak_in_flight: int
    cpu_ms: float = float("nan")  # the serving process's CPU time for this request (gateway only)
    phases: Phases = NO_PHASES


def _peak(timeline: list[list]) -> int:
    events = sorted([(s, 1) for s, *_ in timeline] + [(e, -1) for _, e, *_ in timeline])
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


@dataclass
class ColdReport:
    latency_ms: float
    upstream_concurrency: str
    gateway: list[Sample] = field(default_factory=list)
    floor: list[Sample] = field(default_factory=list)
    new_document: list[Sample] = field(default_factory=list)  # the gateway, a never-seen document each request

    @property
    def gateway_ms(self) -> float:
        return median([s.ms for s in self.gateway])

    @property
    def floor_ms(self) -> float:
        return median([s.ms for s in self.floor])

    @property
    def gateway_cpu_ms(self) -> float:
        return median([s.cpu_ms for s in self.gateway])

    @property
    def limit_ms(self) -> float:
        return max(2 * self.latency_ms, self.floor_ms)

    @property
    def ratio(self) -> float:
        return ratio(self.gateway_ms, self.limit_ms)

    def render(self) -> str:
        def row(name: str, samples: list[Sample]) -> list[object]:
            ms = sorted(s.ms for s in samples)
            return [
                name,
                len(samples),
                median(ms),
                percentile(ms, 95),
                max(ms) if ms else float("nan"),
                f"{median([s.calls for s in samples]):.0f}",
                f"{median([s.waves for s in samples]):.0f}",
                f"{median([s.peak_in_flight for s in samples]):.0f}",
                f"{median([s.cpu_ms for s in samples]):.1f}" if samples is not self.floor else "-",
            ]

        head = [
            "cold chat screen",
            "requests",
            "p50 ms",
            "p95 ms",
            "max ms",
            "calls",
            "waves",
            "peak in flight",
            "CPU ms/req",
        ]
        waves = sorted({s.waves for s in self.gateway})
        return "\n".join(
            [
                table(
                    head,
                    [
                        row("bare two-round client (floor)", self.floor),
                        row("gateway", self.gateway),
                        row("gateway, new document each time", self.new_document),
                    ],
                ),
                f"upstream latency {self.latency_ms:.0f} ms per call; gateway upstream concurrency "
                f"{self.upstream_concurrency}; waves seen per gateway request: {waves}",
                f"limit = max(2 x latency = {2 * self.latency_ms:.0f} ms, floor = {self.floor_ms:.1f} ms) = "
                f"{self.limit_ms:.1f} ms",
                self._phases_line(),
                "CPU ms/req: the gateway process's CPU time (user + system, /proc) from the request's start until its "
                "answer and the emulator's timeline are read (median; other processes' load moves it far less than "
                "the latency)",
                "the ratio is the gateway row's (a known document); the new-document row is shown, not judged",
                f"RATIO gateway/limit {self.ratio:.2f} (target <= {TARGET})",
            ]
        )

    @staticmethod
    def _phase_medians(samples: list[Sample]) -> Phases:
        """Each phase's median over the samples that have it (a one-wave request has no second round)."""
        values = ([getattr(s.phases, f.name) for s in samples] for f in fields(Phases))
        return Phases(*(median([v for v in column if not math.isnan(v)]) for column in values))

    def _phases_line(self) -> str:
        """Where the time goes beside the two round trips, gateway against floor (module docstring of `Phases`)."""

        def show(samples: list[Sample]) -> str:
            p = self._phase_medians(samples)
            return (
                f"before the first call {p.before_first_call:.1f}, between the rounds {p.between_rounds:.1f}, "
                f"second round's starts spread over {p.later_starts_spread:.1f}, last answer to response "
                f"{p.after_last_answer:.1f}"
            )

        return f"median ms: gateway {show(self.gateway)}; floor {show(self.floor)}"

    def row(self) -> RowResult:
        waves = median([s.waves for s in self.gateway])
        return RowResult(
            row=f"3 cold chat screen, {self.latency_ms:.0f} ms upstream",
            measured=f"{self.gateway_ms:.0f} ms, {waves:.0f} waves, {self.gateway_cpu_ms:.1f} ms CPU",
            reference=f"floor {self.floor_ms:.0f} ms (2 rounds)",
            ratio=self.ratio,
            ratio_target=TARGET,
            ratio_better="lower",
            target=f"<= {TARGET} x max(2 x latency, floor)",
            numbers={
                "gateway_ms": self.gateway_ms,
                "gateway_cpu_ms": self.gateway_cpu_ms,
                "new_document_ms": median([s.ms for s in self.new_document]),
                "new_document_cpu_ms": median([s.cpu_ms for s in self.new_document]),
                "floor_ms": self.floor_ms,
                "limit_ms": self.limit_ms,
                "gateway_waves": waves,
                "floor_waves": median([s.waves for s in self.floor]),
                "gateway_calls": median([s.calls for s in self.gateway]),
                "floor_calls": median([s.calls for s in self.floor]),
                **{f"gateway_{k}_ms": v for k, v in asdict(self._phase_medians(self.gateway)).items()},
                **{f"floor_{k}_ms": v for k, v in asdict(self._phase_medians(self.floor)).items()},
            },
        )


class TwoRoundClient:
    """The floor: exactly the chat screen's upstream calls, in the two rounds their dependencies allow."""

    def __init__(self, emulator: ServerProcess, conversation_sid: str) -> None:
        self.base = emulator.url + "/v1/Conversations/" + conversation_sid
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=emulator_auth(emulator))

    async def _get(self, url: str) -> dict:
        async with self.session.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"floor client: {url} answered {resp.status}")
            return await resp.json()

    async def chat_screen(self) -> int:
        """Round 1: conversation, participants and the latest messages page; round 2: every receipts list."""
        _, _, page = await asyncio.gather(
            self._get(self.base),
            self._get(self.base + "/Participants?PageSize=50"),
            self._get(self.base + "/Messages?Order=desc&PageSize=50"),
        )
        with_receipts = [m["sid"] for m in page["messages"] if m.get("delivery")]
        await asyncio.gather(*(self._get(f"{self.base}/Messages/{sid}/Receipts?PageSize=50") for sid in with_receipts))
        return 3 + len(with_receipts)

    async def aclose(self) -> None:
        await self.session.close()


async def _timeline(session: aiohttp.ClientSession, emulator: ServerProcess) -> list[list]:
    async with session.get(emulator.url + "/__bench/timeline") as resp:
        return await resp.json()


def _sample(
    ms: float, timeline: list[list], latency_s: float, span: tuple[float, float], cpu_ms: float = float("nan")
) -> Sample:
    waves = count_waves(timeline, gap=latency_s / 4)
    return Sample(
        ms=ms,
        calls=len(timeline),
        waves=waves,
        peak_in_flight=_peak(timeline),
        cpu_ms=cpu_ms,
        phases=phases(timeline, *span, gap=latency_s / 4),
    )


async def run_cold(
    *,
    latency_ms: float,
    iterations: int,
    upstream_concurrency: int | None = None,
    emulator: ServerProcess | None = None,
) -> ColdReport:
    extra = {"DELIVERY_GATEWAY_RESPONSE_CACHE": "false"}  # every request reads Twilio, whatever its document
    if upstream_concurrency:
        extra["DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY"] = str(upstream_concurrency)
    report = ColdReport(latency_ms, str(upstream_concurrency) if upstream_concurrency else "(gateway default)")
    async with emulator_process(emulator, latency_s=latency_ms / 1000) as emulator:
        sid = emulator.info["conversations"][CONVERSATION]
        env = gateway_env(emulator.info, cache_ttls=0, extra=extra)
        async with server_process(["gateway"], env) as gateway, aiohttp.ClientSession() as session:
            floor = TwoRoundClient(emulator, sid)
            try:
                # Warm-ups open the keep-alive connections of both clients (and of our session); not counted.
                await post_query(session, gateway.url, request_body(sid, "ChatScreenCold"))
                await floor.chat_screen()
                await _timeline(session, emulator)
                deadline = time.monotonic() + DEADLINE
                for i in range(iterations):
                    if time.monotonic() > deadline:
                        break
                    for samples, operation in ((report.gateway, "ChatScreenCold"), (report.new_document, f"New{i}")):
                        cpu = gateway.cpu_seconds()
                        sent = time.monotonic()
                        _, ms = await post_query(session, gateway.url, request_body(sid, operation))
                        span = (sent, time.monotonic())
                        timeline = await _timeline(session, emulator)
                        cpu_ms = (gateway.cpu_seconds() - cpu) * 1000
                        samples.append(_sample(ms, timeline, latency_ms / 1000, span, cpu_ms))
                    sent = time.monotonic()
                    started = time.perf_counter()
                    await floor.chat_screen()
                    ms = (time.perf_counter() - started) * 1000
                    span = (sent, time.monotonic())
                    report.floor.append(_sample(ms, await _timeline(session, emulator), latency_ms / 1000, span))
            finally:
                await floor.aclose()
    return report
