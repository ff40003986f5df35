"""Row 6: cross-replica delivery: two gateway processes sharing Redis pub/sub and a shared store; a webhook into
replica A reaches subscribers on replica B (measured) and on A itself (the same-run reference).

The store URL is a parameter (by default a fresh PostgreSQL database on 127.0.0.1, dropped afterwards: the store
several replicas share); every Redis key the row writes carries a fresh prefix and is deleted afterwards. Never
asserts a threshold; without a reachable Redis the row is reported as not available.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import redis

from bench.chat_screen import CONVERSATION
from bench.fanout import TICKS_SUBSCRIPTION, event_timeout, wait_for_subscriptions, ws_url
from bench.gateway import API_KEY, gateway_env, store_url_supported
from bench.harness import (
    RowResult,
    ServerProcess,
    emulator_process,
    median,
    postgres_database,
    ratio,
    server_process,
    table,
)
from bench.subscribers import subscriber_fleet
from bench.webhook_forms import WebhookSigner, delivery_form, emulator_receipts, post_webhook

TARGET_EXTRA_MS = 5.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STORE_URL = "postgresql://postgres@127.0.0.1:5432"  # no database named: a fresh one per run


def with_prefix(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"prefix": prefix})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass
class ReplicaReport:
    store: str
    events: int = 0
    per_replica: int = 0
    same_ms: list[float] = field(default_factory=list)  # per event: median latency of replica A's subscribers
    cross_ms: list[float] = field(default_factory=list)  # per event: median latency of replica B's subscribers
    missed: int = 0
    skipped: str | None = None

    @property
    def extra_ms(self) -> float:
        return median([b - a for a, b in zip(self.same_ms, self.cross_ms, strict=True)])

    def render(self) -> str:
        if self.skipped is not None:
            return f"not available: {self.skipped}"
        rows = [
            ["subscriber on A, same replica (reference)", median(self.same_ms), max(self.same_ms)],
            ["subscriber on B, other replica", median(self.cross_ms), max(self.cross_ms)],
        ]
        return "\n".join(
            [
                table(["webhook into replica A", "median ms", "max ms"], rows),
                f"{self.events} events, {self.per_replica} subscriber(s) per replica, Redis pub/sub, "
                f"store {self.store}; missed deliveries {self.missed}",
                f"RATIO n/a; median extra latency on the other replica {self.extra_ms:.2f} ms "
                f"(target <= {TARGET_EXTRA_MS:.0f} ms)",
            ]
        )

    def row(self) -> RowResult:
        name = "6 cross-replica delivery (Redis)"
        target = f"extra <= {TARGET_EXTRA_MS:.0f} ms"
        if self.skipped is not None:
            return RowResult(row=name, measured="", reference="", target=target, skipped=self.skipped)
        return RowResult(
            row=name,
            measured=f"B {median(self.cross_ms):.1f} ms (extra {self.extra_ms:.2f} ms)",
            reference=f"A {median(self.same_ms):.1f} ms",
            ratio=ratio(median(self.cross_ms), median(self.same_ms)),
            target=target,
            checks={
                f"extra <= {TARGET_EXTRA_MS:.0f} ms": self.extra_ms <= TARGET_EXTRA_MS,
                "all delivered": not self.missed,
            },
            numbers={
                "extra_ms": self.extra_ms,
                "same_replica_ms": median(self.same_ms),
                "other_replica_ms": median(self.cross_ms),
                "missed": float(self.missed),
            },
        )


def _redis_problem(url: str) -> str | None:
    try:
        with redis.Redis.from_url(url.split("?", 1)[0], socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {url.split('?', 1)[0]} ({type(exc).__name__})"
    return None


def _delete_prefix(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url.split("?", 1)[0]) as client:
        batch = list(client.scan_iter(match=prefix + "*", count=1000))
        if batch:
            client.delete(*batch)


async def run_replicas(
    *,
    events: int,
    per_replica: int = 1,
    redis_url: str = DEFAULT_REDIS_URL,
    store_url: str | None = None,
    emulator: ServerProcess | None = None,
) -> ReplicaReport:
    """`store_url` None: a fresh PostgreSQL database on 127.0.0.1; otherwise that URL, shared by both replicas
    (a `postgresql://host` URL without a database gets a fresh database for the run)."""
    prefix = f"dgbench:{secrets.token_hex(6)}:"
    store = store_url or DEFAULT_STORE_URL
    report = ReplicaReport(store=urlsplit(store).scheme, events=events, per_replica=per_replica)
    fresh_database = urlsplit(store).scheme.startswith("postgres") and not urlsplit(store).path.strip("/")
    problem = _redis_problem(redis_url) or store_url_supported(
        store.rstrip("/") + "/probe" if fresh_database else store
    )
    if problem is not None:
        report.skipped = problem
        return report
    try:
        async with contextlib.AsyncExitStack() as stores:
            if urlsplit(store).scheme.startswith("postgres"):
                store = await stores.enter_async_context(postgres_database(store))
            await _measure(report, store, prefix, redis_url, emulator)
    finally:
        _delete_prefix(redis_url, prefix)
    return report


async def _measure(
    report: ReplicaReport, store: str, prefix: str, redis_url: str, emulator: ServerProcess | None
) -> None:
    """Two replicas on `store` and Redis; the first event warms both up, the others are measured."""
    per_replica = report.per_replica
    async with (
        emulator_process(emulator) as emulator,
        aiohttp.ClientSession() as session,
        contextlib.AsyncExitStack() as stack,
    ):
        conversation_sid = emulator.info["conversations"][CONVERSATION]
        receipts = await emulator_receipts(session, emulator, conversation_sid, report.events + 1)
        env = gateway_env(
            emulator.info,
            store_url=store,
            cache_url=with_prefix(redis_url, prefix + "cache:"),
            pubsub_url=with_prefix(redis_url, prefix + "pubsub:"),
        )
        a, b = await asyncio.gather(  # two replicas, started side by side
            stack.enter_async_context(server_process(["gateway"], env)),
            stack.enter_async_context(server_process(["gateway"], env)),
        )
        signer = WebhookSigner(emulator.info["auth_token"])
        fleet = await stack.enter_async_context(
            subscriber_fleet(
                [ws_url(a), ws_url(b)],  # even subscribers on A, odd ones on B
                2 * per_replica,
                init={"Authorization": f"Bearer {API_KEY}"},
                subscribe={"query": TICKS_SUBSCRIPTION, "variables": {"c": conversation_sid}},
            )
        )
        await wait_for_subscriptions(session, a, per_replica)
        await wait_for_subscriptions(session, b, per_replica)
        for i, receipt in enumerate(receipts):
            form = delivery_form(
                receipt,
                account_sid=emulator.info["account_sid"],
                service_sid=emulator.info["service_sid"],
                status="delivered",
                when=datetime.now(UTC),
            )
            started = time.monotonic()
            await post_webhook(session, a.url, signer, form)
            arrivals = await fleet.arrivals(receipt.receipt_sid, event_timeout(2 * per_replica))
            if i == 0:
                continue  # warm-up: first upstream reads on both replicas
            on_a = [(t - started) * 1000 for t in arrivals.times[0::2] if t is not None]
            on_b = [(t - started) * 1000 for t in arrivals.times[1::2] if t is not None]
            report.missed += 2 * per_replica - len(on_a) - len(on_b)
            if on_a and on_b:
                report.same_ms.append(median(on_a))
                report.cross_ms.append(median(on_b))
