"""Ledger retention: `prune(before)` on every engine, idempotency after pruning, expired resume cursors, the pruner.

Never waits for real days: each ledger gets an injected clock, and `prune`/`prune_ledger` are given their `now`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from delivery_gateway.app import Gateway
from delivery_gateway.graphql.context import GatewayServices, RequestContext
from delivery_gateway.graphql.schema import build_schema
from delivery_gateway.kernel.callers import Caller, CallerKind
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import ChangeKind, create_ledger
from delivery_gateway.pubsub import create_pubsub
from tests.app_support import NO_UPSTREAM
from tests.live.events_factory import delivery, horizon, sids

CONV = "CH" + "3" * 32
MSG = "IM" + "4" * 32
DAY = 86400.0
T_OLD = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
T_NOW = T_OLD + 40 * DAY


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def horizon_of(days: int) -> datetime:
    """The `before` of a retention of `days` at T_NOW."""
    return datetime.fromtimestamp(T_NOW, UTC) - timedelta(days=days)


async def open_ledger(url: str, clock: Clock):
    ledger = create_ledger(url)
    ledger.clock = clock
    await ledger.start()
    return ledger


async def test_prune_drops_old_entries_keeps_recent_state_and_pending_inbox(ledger_url):
    clock = Clock(T_OLD)
    ledger = await open_ledger(ledger_url, clock)
    try:
        r0, r1 = sids("DY", 2)
        (p,) = sids("MB", 1)
        sent = await ledger.apply(delivery(CONV, MSG, r0, "sent", 1))
        await ledger.apply(delivery(CONV, MSG, r0, "delivered", 2))
        old_horizon = await ledger.apply(horizon(CONV, p, 5))
        done = await ledger.inbox_add('{"old":"done"}')
        pending = await ledger.inbox_add('{"old":"pending"}')
        await ledger.inbox_done(done)

        clock.now = T_NOW
        read = await ledger.apply(delivery(CONV, MSG, r0, "read", 3))
        fresh = await ledger.apply(delivery(CONV, MSG, r1, "sent", 4))

        result = await ledger.prune(horizon_of(30))
        assert (result.changes, result.dedupe_keys, result.history) == (3, 3, 2)
        assert result.total == 8
        assert result.pruned_through == old_horizon.change.seq
        assert await ledger.pruned_through() == old_horizon.change.seq

        assert [c.seq for c in await ledger.changes_after(CONV, 0)] == [read.change.seq, fresh.change.seq]
        assert [h.status for h in await ledger.history(r0)] == [DeliveryStatus.READ]
        assert [h.status for h in await ledger.history(r1)] == [DeliveryStatus.SENT]
        assert (await ledger.receipt(r0)).status is DeliveryStatus.READ
        assert [x.sid for x in await ledger.receipts_for_message(MSG)] == sorted([r0, r1])
        assert await ledger.read_horizon(p) == 5
        assert await ledger.inbox_pending() == [(pending, '{"old":"pending"}')]  # unprocessed: never pruned
        # The sequence counter survives: new changes keep counting up, past anything pruned.
        assert await ledger.last_seq() == fresh.change.seq
        later = await ledger.apply(horizon(CONV, p, 6))
        assert later.change.seq == fresh.change.seq + 1 > sent.change.seq

        again = await ledger.prune(horizon_of(30))
        assert (again.changes, again.dedupe_keys, again.history) == (0, 0, 0)
        assert again.pruned_through == old_horizon.change.seq
    finally:
        await ledger.close()


async def test_everything_pruned_keeps_the_sequence_counter(ledger_url):
    clock = Clock(T_OLD)
    ledger = await open_ledger(ledger_url, clock)
    try:
        (p,) = sids("MB", 1)
        last = await ledger.apply(horizon(CONV, p, 1))
        result = await ledger.prune(horizon_of(1))
        assert result.changes == 1 and result.pruned_through == last.change.seq
        assert await ledger.changes_after(CONV, 0) == []
        assert await ledger.last_seq() == last.change.seq
        clock.now = T_NOW
        assert (await ledger.apply(horizon(CONV, p, 2))).change.seq == last.change.seq + 1
    finally:
        await ledger.close()


async def test_late_and_duplicate_events_after_pruning_leave_the_same_state(ledger_url):
    clock = Clock(T_OLD)
    ledger = await open_ledger(ledger_url, clock)
    try:
        (r,) = sids("DY", 1)
        (p,) = sids("MB", 1)
        for status, second in (("sent", 1), ("delivered", 2), ("read", 3)):
            await ledger.apply(delivery(CONV, MSG, r, status, second))
        await ledger.apply(horizon(CONV, p, 7))
        before = await ledger.receipt(r)

        clock.now = T_NOW
        result = await ledger.prune(horizon_of(30))
        assert result.dedupe_keys == 4 and result.changes == 4

        # Their dedupe keys are gone: the retained current state alone must keep these harmless.
        for event in (
            delivery(CONV, MSG, r, "read", 3),  # exact duplicate
            delivery(CONV, MSG, r, "delivered", 2),  # late, older
            delivery(CONV, MSG, r, "sent", 1),
            horizon(CONV, p, 7),
            horizon(CONV, p, 5),
        ):
            applied = await ledger.apply(event)
            assert applied.change is None, event
        assert await ledger.receipt(r) == before
        assert await ledger.read_horizon(p) == 7
        assert await ledger.changes_after(CONV, 0) == []
        # A genuinely newer event still applies.
        moved = await ledger.apply(horizon(CONV, p, 8))
        assert moved.change is not None and moved.change.payload["previous_index"] == 7
    finally:
        await ledger.close()


# Resuming subscriptions across the retention horizon


async def _subscribe(ledger, after: str, count: int) -> tuple[list[str], list]:
    """Cursors of the first `count` readHorizonUpdates after `after`, or the errors the subscription ended with."""
    settings = Settings(_env_file=None)
    broker = create_pubsub("memory://", queue_size=16)
    await broker.start()
    services = GatewayServices(settings=settings, upstream=NO_UPSTREAM, ledger=ledger, pubsub=broker)
    context = RequestContext(services, Caller(kind=CallerKind.INTERNAL, identity="t"))
    stream = await build_schema(settings).subscribe(
        "subscription($c: String!, $a: String) { readHorizonUpdates(conversationSid: $c, after: $a) { cursor } }",
        variable_values={"c": CONV, "a": after},
        context_value=context,
    )
    cursors: list[str] = []
    try:
        if not hasattr(stream, "__anext__"):  # failed before the stream started
            return cursors, list(stream.errors or [])
        while len(cursors) < count:
            result = await asyncio.wait_for(stream.__anext__(), 2)
            if result.errors:
                return cursors, list(result.errors)
            cursors.append(result.data["readHorizonUpdates"]["cursor"])
        return cursors, []
    finally:
        if hasattr(stream, "aclose"):
            await stream.aclose()
        await broker.close()


async def test_resume_from_an_expired_cursor_is_cursor_expired_and_a_retained_one_replays(ledger_url):
    clock = Clock(T_OLD)
    ledger = await open_ledger(ledger_url, clock)
    try:
        (p,) = sids("MB", 1)
        old = [await ledger.apply(horizon(CONV, p, i)) for i in (1, 2)]
        clock.now = T_NOW
        new = [await ledger.apply(horizon(CONV, p, i)) for i in (3, 4)]
        result = await ledger.prune(horizon_of(30))
        assert result.pruned_through == old[-1].change.seq

        cursors, errors = await _subscribe(ledger, old[0].change.cursor, 1)
        assert cursors == [] and errors, "an expired cursor must not silently skip events"
        assert errors[0].extensions["code"] == "CURSOR_EXPIRED"
        assert "subscribe again" in errors[0].message

        # The newest pruned change was seen by the client: nothing after it is missing.
        cursors, errors = await _subscribe(ledger, old[-1].change.cursor, 2)
        assert errors == [] and cursors == [c.change.cursor for c in new]
        cursors, errors = await _subscribe(ledger, new[0].change.cursor, 1)
        assert errors == [] and cursors == [new[1].change.cursor]
    finally:
        await ledger.close()


# The gateway's periodic pruning


def _settings(**env) -> Settings:
    return Settings(_env_file=None, DELIVERY_GATEWAY_STORE_URL="memory://", **env)


async def test_gateway_prunes_with_the_configured_retention():
    gateway = Gateway(_settings(DELIVERY_GATEWAY_LEDGER_RETENTION_DAYS=7), upstream=NO_UPSTREAM)
    ledger = gateway.services.ledger
    clock = Clock(T_OLD)
    ledger.clock = clock
    await ledger.start()
    try:
        (p,) = sids("MB", 1)
        await ledger.apply(horizon(CONV, p, 1))
        clock.now = T_OLD + 5 * DAY
        await ledger.apply(horizon(CONV, p, 2))
        now = datetime.fromtimestamp(T_OLD + 8 * DAY, UTC)
        result = await gateway.prune_ledger(now)
        assert result.changes == 1 and [
            c.payload["last_read_message_index"] for c in await ledger.changes_after(CONV, 0)
        ] == [2]
        assert [c.kind for c in await ledger.changes_after(CONV, 0)] == [ChangeKind.READ_HORIZON]
    finally:
        await ledger.close()


def test_retention_setting_is_at_least_one_day():
    assert _settings().ledger_retention_days == 30
    with pytest.raises(ValueError):
        _settings(DELIVERY_GATEWAY_LEDGER_RETENTION_DAYS=0)


async def test_pruning_runs_periodically_survives_failures_and_stops_with_the_gateway(caplog):
    gateway = Gateway(_settings(), upstream=NO_UPSTREAM)
    gateway.prune_first_delay = 0.0
    gateway.prune_interval = 0.01
    calls: list[datetime] = []

    async def failing_prune(before: datetime):
        calls.append(before)
        raise RuntimeError("ledger down")

    gateway.services.ledger.prune = failing_prune
    caplog.set_level(logging.ERROR, logger="delivery_gateway")
    await gateway.start()
    try:
        for _ in range(200):  # bounded: ~2 s at most
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(calls) >= 3, "pruning keeps running after a failure"
        assert gateway._pruner is not None and not gateway._pruner.done()
        assert "ledger pruning failed" in caplog.text
        retention = datetime.now(UTC) - calls[0]
        assert timedelta(days=30) - timedelta(minutes=1) < retention < timedelta(days=30, minutes=1)
    finally:
        await gateway.close()
    assert gateway._pruner is None
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen
