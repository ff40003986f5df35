"""Row 5: signed webhook ingest into the durable ledger, events/s per gateway process, one row per store URL.

wrk POSTs pre-signed `onDeliveryUpdated` forms through the real endpoint, each body once (a Lua script rotates
them). The rate is the lower of what was acknowledged (200s per second) and what the processor applied in the
same window, so a backlog cannot pass for throughput. The gateway runs under the GC policy `serve` applies. Then
the gateway is killed (SIGKILL, nothing flushed) and the ledger is opened again: every acknowledged event must be
there, applied or still in the inbox. Never asserts a threshold; a store URL this build does not support is
reported as not available, not as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp

from bench.chat_screen import metric_total
from bench.gateway import gateway_env, open_ledger, store_url_supported
from bench.harness import RowResult, postgres_database, server_process, table
from bench.webhook_forms import (
    FORM_TYPE,
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    ReceiptRef,
    WebhookSigner,
    delivery_form,
    fake_sid,
)
from bench.wrk import WrkResult, rotating_post_script, run_wrk

TARGET = 2000.0  # events/s per process, on the SQLite default
BODIES_PER_SECOND = 6000  # pre-signed bodies per second of run; more than a single process acknowledges today
WEBHOOK_METRIC = "delivery_gateway_webhooks_received_total"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "bench-auth-token"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class IngestReport:
    store: str
    wrk: WrkResult | None = None
    applied_in_window: int = 0
    drain_per_second: float = float("nan")  # applied per second after the window, with no new webhooks arriving
    drained: bool = False  # the backlog emptied during that measurement (then the rate is a lower bound)
    recorded_after_kill: int = 0
    pending_after_kill: int = 0
    skipped: str | None = None

    @property
    def acked_per_second(self) -> float:
        return self.wrk.rps if self.wrk else float("nan")

    @property
    def applied_per_second(self) -> float:
        return self.applied_in_window / self.wrk.seconds if self.wrk and self.wrk.seconds else float("nan")

    @property
    def events_per_second(self) -> float:
        return min(self.acked_per_second, self.applied_per_second)

    @property
    def cpu_ms_per_event(self) -> float:
        """Server CPU (every thread) over the window per acknowledged event: what a busy machine does not skew."""
        if self.wrk is None or not self.wrk.ok_requests:
            return float("nan")
        return 1000 * self.wrk.server_cpu_s / self.wrk.ok_requests

    @property
    def durable(self) -> bool:
        return self.wrk is not None and self.recorded_after_kill >= self.wrk.ok_requests - self.wrk.wrapped

    def row(self) -> RowResult:
        name = f"5 webhook ingest, {self.store}"
        target = f">= {TARGET:.0f} events/s" if self.store == "sqlite" else "(no target yet)"
        if self.skipped is not None or self.wrk is None:
            return RowResult(row=name, measured="", reference="", target=target, skipped=self.skipped)
        checks = {"every 200 durable": self.durable}
        if self.store == "sqlite":
            checks[f">= {TARGET:.0f}/s"] = self.events_per_second >= TARGET
        return RowResult(
            row=name,
            measured=f"{self.events_per_second:.0f} events/s",
            reference=(
                f"acked {self.acked_per_second:.0f}/s, applied {self.applied_per_second:.0f}/s, "
                f"{self.cpu_ms_per_event:.3f} ms CPU/event"
            ),
            target=target,
            checks=checks,
            numbers={
                "events_per_second": self.events_per_second,
                "acked_per_second": self.acked_per_second,
                "applied_per_second": self.applied_per_second,
                "drain_per_second": self.drain_per_second,
                "p99_ms": self.wrk.p99_ms,
                "wrk_cpu_share": self.wrk.wrk_cpu_share,
                "server_cpu_share": self.wrk.server_cpu_share,
                "server_cpu_ms_per_event": self.cpu_ms_per_event,
                "acknowledged": float(self.wrk.ok_requests),
                "recorded_after_kill": float(self.recorded_after_kill),
                "pending_after_kill": float(self.pending_after_kill),
                "duplicates_sent": float(self.wrk.wrapped),
            },
        )


def render(reports: list[IngestReport]) -> str:
    rows = []
    notes = []
    for r in reports:
        if r.wrk is None:
            rows.append([r.store, *["-"] * 10])
            notes.append(f"{r.store}: not available ({r.skipped})")
            continue
        w = r.wrk
        rows.append(
            [
                r.store,
                f"{r.events_per_second:.0f}",
                f"{r.acked_per_second:.0f}",
                f"{r.applied_per_second:.0f}",
                f"{r.drain_per_second:.0f}{'+' if r.drained else ''}",
                w.p50_ms,
                w.p99_ms,
                f"{w.server_cpu_share:.0%}",
                f"{r.cpu_ms_per_event:.3f}",
                f"{w.wrk_cpu_share:.0%}",
                f"{r.recorded_after_kill} of {w.ok_requests} ({r.pending_after_kill} in inbox)",
            ]
        )
        if w.wrapped:
            notes.append(f"{r.store}: the run outpaced the pre-signed bodies; {w.wrapped} duplicates were sent")
        if w.non_2xx or w.socket_errors:
            notes.append(f"{r.store}: {w.non_2xx} non-2xx answers, {w.socket_errors} socket errors")
    head = [
        "store",
        "events/s",
        "acked/s",
        "applied/s",
        "drain/s",
        "p50 ms",
        "p99 ms",
        "server CPU",
        "CPU ms/event",
        "wrk CPU",
        "in ledger after SIGKILL",
    ]
    lines = [
        table(head, rows),
        "events/s = min(acknowledged, applied) per second of the window; drain/s = applied per second after the "
        "window, with no new webhooks (+: the backlog emptied, a lower bound); CPU ms/event = the server process's "
        "CPU time (all threads) over the window per acknowledged event; then the gateway is killed with "
        "SIGKILL and the ledger reopened: every acknowledged event must be applied or waiting in the inbox",
        f"RATIO n/a (target >= {TARGET:.0f} events/s per process on the SQLite default)",
        *notes,
    ]
    return "\n".join(lines)


def _bodies(path: Path, count: int, signer: WebhookSigner) -> None:
    """`count` signed forms, one `<signature>\\t<body>` per line: receipt k goes `sent`, then `delivered`."""
    conversation = fake_sid("CH", 0, "ingest")
    service = fake_sid("IS", 0, "ingest")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        for i in range(count):
            k = i // 2
            receipt = ReceiptRef(
                conversation_sid=conversation,
                message_sid=fake_sid("IM", k // 2, "ingest"),
                receipt_sid=fake_sid("DY", k, "ingest"),
                participant_sid=fake_sid("MB", k % 2, "ingest"),
                channel_message_sid=fake_sid("SM", k, "ingest"),
            )
            form = delivery_form(
                receipt,
                account_sid=ACCOUNT_SID,
                service_sid=service,
                status="delivered" if i % 2 else "sent",
                when=base + timedelta(seconds=k, milliseconds=500 * (i % 2)),
            )
            out.write(f"{signer.sign(form)}\t{urlencode(form)}\n")


async def _applied(session: aiohttp.ClientSession, url: str) -> int:
    total = 0.0
    for outcome in ("applied", "duplicate", "stale"):
        total += await metric_total(session, url, WEBHOOK_METRIC, outcome=outcome)
    return int(total)


def _event_key(form: dict[str, str]) -> tuple[str, str]:
    return form["DeliveryReceiptSid"], form["Status"]


def _sent_events(bodies: Path) -> set[tuple[str, str]]:
    return {_event_key(dict(parse_qsl(line.split("\t", 1)[1]))) for line in bodies.read_text().splitlines()}


async def _recorded(store_url: str, bodies: Path) -> tuple[int, int]:
    """(distinct events found in the ledger, applied or still in its inbox; entries still in the inbox), read
    through the ledger's own API after the gateway was killed."""
    sent = await asyncio.to_thread(_sent_events, bodies)
    async with open_ledger(store_url) as ledger:
        histories = await ledger.history_many(sorted({sid for sid, _ in sent}))
        found = {(sid, str(getattr(e.status, "value", e.status))) for sid, hs in histories.items() for e in hs}
        pending = await ledger.inbox_pending(limit=10**7)
    found |= {_event_key(json.loads(body)) for _, body in pending}
    return len(found & sent), len(pending)


async def ingest_once(store: str, store_url: str, *, duration: float, connections: int) -> IngestReport:
    report = IngestReport(store)
    signer = WebhookSigner(AUTH_TOKEN)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        bodies = Path(tmp) / "bodies.tsv"
        count = int(BODIES_PER_SECOND * max(1, round(duration))) + 1000
        script = rotating_post_script(WEBHOOK_PATH, bodies, FORM_TYPE, SIGNATURE_HEADER)
        env = gateway_env(None, store_url=store_url, extra={"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
        async with contextlib.AsyncExitStack() as stack:
            # Sign the bodies while the gateway starts.
            gateway, _ = await asyncio.gather(
                # Under the GC policy `delivery-gateway serve` applies once started, as a deployed gateway runs.
                stack.enter_async_context(server_process(["gateway"], env)),
                asyncio.to_thread(_bodies, bodies, count, signer),
            )
            session = await stack.enter_async_context(aiohttp.ClientSession())
            before = await _applied(session, gateway.url)
            report.wrk = await run_wrk(
                gateway.url + WEBHOOK_PATH,
                script,
                duration=duration,
                connections=connections,
                server=gateway,
                script_args=["1"],
            )
            applied = await _applied(session, gateway.url)
            report.applied_in_window = applied - before
            # The backlog's processing rate alone: how fast applies go once acknowledgements stop competing.
            drain_started = time.monotonic()
            await asyncio.sleep(min(3.0, duration / 2))
            after = await _applied(session, gateway.url)
            report.drain_per_second = (after - applied) / (time.monotonic() - drain_started)
            report.drained = after - before >= report.wrk.ok_requests
            gateway.proc.kill()  # no drain, no flush: only what was durable survives
            await gateway.proc.wait()
        report.recorded_after_kill, report.pending_after_kill = await _recorded(store_url, bodies)
    return report


async def run_ingest(
    *, duration: float, connections: int, postgres_url: str | None = DEFAULT_POSTGRES_URL
) -> list[IngestReport]:
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-sqlite-") as tmp:
        reports.append(
            await ingest_once("sqlite", f"sqlite:///{tmp}/ledger.sqlite3", duration=duration, connections=connections)
        )
    if postgres_url is None:
        reports.append(IngestReport("postgresql", skipped="not requested (--postgres-url none)"))
        return reports
    why_not = store_url_supported(postgres_url.rstrip("/") + "/probe")
    if why_not is not None:
        reports.append(IngestReport("postgresql", skipped=f"this build does not accept postgresql:// ({why_not})"))
        return reports
    try:
        async with postgres_database(postgres_url) as url:
            reports.append(await ingest_once("postgresql", url, duration=duration, connections=connections))
    except Exception as exc:
        reports.append(IngestReport("postgresql", skipped=f"{type(exc).__name__}: {exc}"[:200]))
    return reports
