"""Row 4: one webhook fanned out to N WebSocket subscribers of one conversation, against a raw WebSocket send.

Measures, per size N: delivery latency from the webhook POST to each subscriber's frame (p50/p99), memory per
idle subscriber (RSS delta / N), and sends per CPU-second; the reference is a bare Starlette WebSocket endpoint
under the same uvicorn sending pre-serialised bytes (the gateway's own frame) to the same N sockets. Subscribers
live in separate client processes (`bench.ws_clients`) whose CPU is reported. Never asserts a threshold; every
wait has a deadline, and the process's open-file limit is raised for the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from bench.chat_screen import CONVERSATION, metric_total
from bench.gateway import API_KEY, gateway_env
from bench.harness import (
    RowResult,
    ServerProcess,
    emulator_process,
    percentile,
    raise_open_file_limit,
    ratio,
    server_process,
    table,
)
from bench.subscribers import Arrivals, SubscriberFleet, subscriber_fleet
from bench.webhook_forms import ReceiptRef, WebhookSigner, delivery_form, emulator_receipts, fake_sid, post_webhook

# README.md's live-updates example.
TICKS_SUBSCRIPTION = """
subscription Ticks($c: String!, $after: String) {
  deliveryUpdates(conversationSid: $c, after: $after) {
    cursor previousStatus
    receipt { sid status errorCode error { name } }
    message { sid ticks delivery { total delivered read failed } }
  }
}
"""

MAX_IDLE_KB = 30.0
SUBSCRIBERS_PER_CLIENT_PROCESS = 5000


def p99_target_ms(n: int) -> float:
    """The latency target: 50 ms up to 1,000 subscribers, 500 ms up to 10,000."""
    return 50.0 if n <= 1000 else 500.0


def event_timeout(n: int) -> float:
    """How long to wait for one event to reach `n` subscribers before calling the rest missed (and for N
    subscriptions to show up). Generous: the first event also pays for the first upstream reads."""
    return 30.0 + 0.02 * n


def measured_timeout(n: int, warmup_s: float) -> float:
    """Per measured event: the fixed allowance, or three times what the warm-up event took on this machine."""
    return max(10.0 + 0.005 * n, 3 * warmup_s)


@dataclass
class Side:
    """One server's fan-out of `events` events to `n` subscribers."""

    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    wall_s: float = 0.0
    idle_rss_delta: int = 0  # subscribed, before any event
    after_rss_delta: int = 0  # idle again after the events (what subscribers keep between events)
    connect_seconds: float = 0.0
    frame_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        """Percentile over every expected delivery; a missed one counts as never arriving (infinite latency)."""
        return percentile(sorted(self.latencies_ms) + [math.inf] * self.missed, q)

    @property
    def sends(self) -> int:
        return len(self.latencies_ms)

    @property
    def sends_per_cpu_second(self) -> float:
        return self.sends / self.server_cpu_s if self.server_cpu_s else float("nan")


@dataclass
class FanoutReport:
    subscribers: int
    events: int
    client_processes: int
    gateway: Side
    raw: Side

    @property
    def kb_per_subscriber(self) -> float:
        """RSS delta per idle subscriber: the larger of before any event and after the events."""
        return max(self.gateway.idle_rss_delta, self.gateway.after_rss_delta) / self.subscribers / 1024

    @property
    def ratio(self) -> float:
        return ratio(self.gateway.sends_per_cpu_second, self.raw.sends_per_cpu_second)

    def render(self) -> str:
        def row(name: str, s: Side) -> list[object]:
            return [
                name,
                s.p(50),
                s.p(99),
                s.p(100),
                f"{s.sends}/{self.subscribers * self.events}",
                f"{s.sends_per_cpu_second:.0f}",
                f"{s.server_cpu_s:.2f}",
                f"{s.client_cpu_s / s.wall_s:.0%}, {s.client_cpu_s / max(s.sends, 1) * 1e6:.0f} us/frame"
                if s.wall_s
                else "-",
                f"{s.idle_rss_delta / self.subscribers / 1024:.1f} / {s.after_rss_delta / self.subscribers / 1024:.1f}",
                f"{s.connect_seconds:.1f}",
            ]

        head = [
            f"{self.subscribers} subscribers",
            "p50 ms",
            "p99 ms",
            "max ms",
            "delivered",
            "sends/CPU-s",
            "server CPU s",
            "client CPU",
            "KB/idle sub before/after",
            "connect s",
        ]
        lines = [
            table(head, [row("raw WebSocket send (reference)", self.raw), row("gateway", self.gateway)]),
            f"{self.events} events, each a signed onDeliveryUpdated webhook (raw: POST /broadcast of the gateway's "
            f"{self.raw.frame_bytes}-byte frame); subscribers in {self.client_processes} client process(es), their "
            f"CPU shown as a share of one core over the events; KB per idle subscriber = server RSS delta / N, "
            f"subscribed before any event / idle again after the events (the larger is held to the target)",
            f"RATIO gateway/raw sends per CPU-second {self.ratio:.3f}; p99 {self.gateway.p(99):.0f} ms (target <= "
            f"{p99_target_ms(self.subscribers):.0f}); {self.kb_per_subscriber:.1f} KB per idle subscriber "
            f"(target <= {MAX_IDLE_KB:.0f})",
        ]
        for name, side in (("gateway", self.gateway), ("raw", self.raw)):
            if side.missed or side.errors:
                lines.append(f"WARNING {name}: {side.missed} deliveries missed; errors: {side.errors[:3]}")
        return "\n".join(lines)

    def row(self) -> RowResult:
        g = self.gateway
        target = p99_target_ms(self.subscribers)
        return RowResult(
            row=f"4 fan-out to {self.subscribers} subscribers",
            measured=f"p50 {g.p(50):.0f} / p99 {g.p(99):.0f} ms, {self.kb_per_subscriber:.0f} KB/sub, "
            f"{g.sends_per_cpu_second:.0f} sends/CPU-s",
            reference=f"raw p99 {self.raw.p(99):.0f} ms, {self.raw.sends_per_cpu_second:.0f} sends/CPU-s",
            ratio=self.ratio,
            target=f"p99 <= {target:.0f} ms; <= {MAX_IDLE_KB:.0f} KB/sub",
            checks={
                f"p99 <= {target:.0f} ms": g.p(99) <= target,
                f"<= {MAX_IDLE_KB:.0f} KB/sub": self.kb_per_subscriber <= MAX_IDLE_KB,
                "all delivered": g.missed == 0,
            },
            numbers={
                "subscribers": float(self.subscribers),
                "p50_ms": g.p(50),
                "p99_ms": g.p(99),
                "kb_per_idle_subscriber": self.kb_per_subscriber,
                "sends_per_cpu_second": g.sends_per_cpu_second,
                "raw_p50_ms": self.raw.p(50),
                "raw_p99_ms": self.raw.p(99),
                "raw_sends_per_cpu_second": self.raw.sends_per_cpu_second,
                "kb_per_subscriber_before_events": self.gateway.idle_rss_delta / self.subscribers / 1024,
                "kb_per_subscriber_after_events": self.gateway.after_rss_delta / self.subscribers / 1024,
                "raw_kb_per_idle_socket": self.raw.idle_rss_delta / self.subscribers / 1024,
                "missed": float(g.missed),
                "gateway_client_cpu_share": g.client_cpu_s / g.wall_s if g.wall_s else float("nan"),
                "raw_client_cpu_share": self.raw.client_cpu_s / self.raw.wall_s if self.raw.wall_s else float("nan"),
            },
        )


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://", 1) + "/graphql"


async def _until(check, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_for_subscriptions(session: aiohttp.ClientSession, gateway: ServerProcess, n: int) -> None:
    async def ready() -> bool:
        return await metric_total(session, gateway.url, "delivery_gateway_subscriptions_active") >= n

    await _until(ready, event_timeout(n), f"{n} active subscriptions on the gateway")


def _record(side: Side, arrivals: Arrivals, started: float) -> None:
    side.latencies_ms.extend((t - started) * 1000 for t in arrivals.times if t is not None)
    side.missed += len(arrivals.times) - arrivals.received
    side.errors.extend(arrivals.errors)


async def _events(
    side: Side, fleet: SubscriberFleet, server: ServerProcess, markers: list[str], send, n: int, within_s: float
) -> None:
    """Send one event per marker, each after the previous one reached everyone (or timed out)."""
    client0 = await fleet.client_cpu_seconds()  # client CPU counted over the events only (connects excluded)
    cpu0 = server.cpu_seconds()
    wall0 = time.monotonic()
    for marker in markers:
        started = time.monotonic()
        await send(marker)
        _record(side, await fleet.arrivals(marker, within_s), started)
    side.server_cpu_s = server.cpu_seconds() - cpu0
    side.wall_s = time.monotonic() - wall0
    side.client_cpu_s = await fleet.client_cpu_seconds() - client0


def settle_seconds(n: int) -> float:
    """Pause before reading an idle server's RSS, so connection set-up garbage is gone (longer for more sockets)."""
    return min(0.5, 0.05 + n / 2000)


async def _gateway_side(
    session: aiohttp.ClientSession,
    emulator: ServerProcess,
    gateway: ServerProcess,
    n: int,
    receipts: list[ReceiptRef],
    processes: int,
) -> tuple[Side, str, str]:
    """The gateway's fan-out; also returns the frame the subscribers received for the warm-up event and the
    receipt SID in it (the raw reference sends that frame with its own markers in place of the SID)."""
    side = Side()
    conversation_sid = receipts[0].conversation_sid
    signer = WebhookSigner(emulator.info["auth_token"])
    by_sid = {r.receipt_sid: r for r in receipts}

    async def send(receipt_sid: str) -> None:
        form = delivery_form(
            by_sid[receipt_sid],
            account_sid=emulator.info["account_sid"],
            service_sid=emulator.info["service_sid"],
            status="delivered",
            when=datetime.now(UTC),
        )
        await post_webhook(session, gateway.url, signer, form)

    rss0 = gateway.rss_bytes()
    async with subscriber_fleet(
        [ws_url(gateway)],
        n,
        init={"Authorization": f"Bearer {API_KEY}"},
        subscribe={"query": TICKS_SUBSCRIPTION, "variables": {"c": conversation_sid}},
        processes=processes,
    ) as fleet:
        side.connect_seconds = fleet.connect_seconds
        await wait_for_subscriptions(session, gateway, n)
        await asyncio.sleep(settle_seconds(n))
        side.idle_rss_delta = gateway.rss_bytes() - rss0
        warmup = receipts[0].receipt_sid
        started = time.monotonic()
        await send(warmup)  # first event: first upstream reads and imports; not measured
        first = await fleet.arrivals(warmup, event_timeout(n))
        warmup_s = time.monotonic() - started
        if first.received < n:
            raise RuntimeError(f"only {first.received} of {n} subscribers received the warm-up event")
        sample = first.sample or ""
        side.frame_bytes = len(sample.encode())
        markers = [r.receipt_sid for r in receipts[1:]]
        await _events(side, fleet, gateway, markers, send, n, measured_timeout(n, warmup_s))
        await asyncio.sleep(settle_seconds(n))
        side.after_rss_delta = gateway.rss_bytes() - rss0
    return side, sample, warmup


async def _raw_side(
    session: aiohttp.ClientSession,
    raw: ServerProcess,
    n: int,
    events: int,
    sample: str,
    placeholder: str,
    processes: int,
) -> Side:
    """The same frame the gateway sent, with each event's marker in place of `placeholder` (same length)."""
    side = Side(frame_bytes=len(sample.encode()))
    rss0 = raw.rss_bytes()

    async def send(marker: str) -> None:
        async with session.post(raw.url + "/broadcast", data=sample.replace(placeholder, marker).encode()) as r:
            await r.read()

    async def subscribed() -> bool:
        async with session.get(raw.url + "/stats") as resp:
            return (await resp.json())["subscribed"] >= n

    async with subscriber_fleet(
        [ws_url(raw)], n, init={}, subscribe={"query": "subscription { raw }"}, processes=processes
    ) as fleet:
        side.connect_seconds = fleet.connect_seconds
        await _until(subscribed, event_timeout(n), f"{n} raw subscribers")
        await asyncio.sleep(settle_seconds(n))
        side.idle_rss_delta = raw.rss_bytes() - rss0
        warmup = fake_sid("DY", 0, "raw")
        started = time.monotonic()
        await send(warmup)
        await fleet.arrivals(warmup, event_timeout(n))
        warmup_s = time.monotonic() - started
        markers = [fake_sid("DY", i + 1, "raw") for i in range(events)]
        await _events(side, fleet, raw, markers, send, n, measured_timeout(n, warmup_s))
        await asyncio.sleep(settle_seconds(n))
        side.after_rss_delta = raw.rss_bytes() - rss0
    return side


async def run_fanout(*, sizes: list[int], events: int, emulator: ServerProcess | None = None) -> list[FanoutReport]:
    """Per size: a fresh gateway (SQLite ledger, in-memory pub/sub) and a fresh raw server, started side by side and
    measured one after the other, each with its own subscriber processes."""
    raise_open_file_limit(2 * max(sizes) + 4096)
    reports = []
    async with emulator_process(emulator) as emulator, aiohttp.ClientSession() as session:
        conversation_sid = emulator.info["conversations"][CONVERSATION]
        receipts = await emulator_receipts(session, emulator, conversation_sid, events + 1)
        for n in sizes:
            processes = max(1, math.ceil(n / SUBSCRIBERS_PER_CLIENT_PROCESS))
            with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
                env = gateway_env(emulator.info, store_url=f"sqlite:///{tmp}/ledger.sqlite3")
                async with contextlib.AsyncExitStack() as stack:
                    gateway, raw = await asyncio.gather(
                        stack.enter_async_context(server_process(["gateway"], env)),
                        stack.enter_async_context(server_process(["raw-ws"])),
                    )
                    gw_side, sample, placeholder = await _gateway_side(
                        session, emulator, gateway, n, receipts, processes
                    )
                    raw_side = await _raw_side(session, raw, n, events, sample, placeholder, processes)
            reports.append(FanoutReport(n, events, processes, gw_side, raw_side))
    return reports
