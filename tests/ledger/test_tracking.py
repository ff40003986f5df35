"""Tracked receipts (what reconciliation re-reads) on every engine: which receipts are tracked, when they are due,
and leases that never give one receipt to two claimers, even two ledgers on one store claiming at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.ledger.sql import TRACKED_MEMO_SECONDS, SqlLedger

PERIOD, LEASE, WINDOW = 60.0, 10.0, 86400.0
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
CONVERSATION = "CH" + "a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def opened(url: str, clock: Clock) -> AsyncIterator[SqlLedger]:
    ledger = SqlLedger(url, clock=clock)
    await ledger.start()
    try:
        yield ledger
    finally:
        await ledger.close()


def sid(prefix: str, n: int) -> str:
    return f"{prefix}{n:032x}"


def receipt(n: int, message: int, status: DeliveryStatus | None, channel: str = "WA") -> ReceiptRecord:
    return ReceiptRecord(
        sid=sid("DY", n),
        conversation_sid=CONVERSATION,
        message_sid=sid("IM", message),
        status=status,
        channel_message_sid=f"{channel}{n:032x}",
        date_created=datetime.fromtimestamp(START, UTC),
    )


def event(record: ReceiptRecord) -> DeliveryEvent:
    return DeliveryEvent.from_receipt(record, source="webhook")


async def claim(ledger: SqlLedger, owner: str = "a", limit: int = 100) -> list[str]:
    rows = await ledger.claim_tracked(owner, period=PERIOD, lease=LEASE, window=WINDOW, limit=limit)
    return [row.receipt_sid for row in rows]


async def test_applying_webhooks_tracks_what_can_still_change_and_forgets_the_rest(ledger_url):
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        await ledger.apply_many(
            [
                event(receipt(1, 1, DeliveryStatus.SENT, "SM")),
                event(receipt(2, 1, DeliveryStatus.DELIVERED, "SM")),  # SMS: nothing follows delivered
                event(receipt(3, 2, DeliveryStatus.DELIVERED, "WA")),  # WhatsApp: read may follow
                event(receipt(4, 2, DeliveryStatus.FAILED, "WA")),
            ]
        )
        clock.now += PERIOD
        assert sorted(await claim(ledger)) == [sid("DY", 1), sid("DY", 3)]
        await ledger.apply(event(receipt(3, 2, DeliveryStatus.READ, "WA")))
        stats = await ledger.tracked_stats(period=PERIOD, window=WINDOW)
        assert stats.tracked == 1  # read ends the receipt: forgotten with the same transaction


async def test_a_receipt_is_due_one_period_after_the_gateway_last_learnt_its_state(ledger_url):
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        assert (
            await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT), receipt(2, 1, DeliveryStatus.READ)]) == 1
        )
        assert await claim(ledger) == []
        clock.now += PERIOD - 1
        assert await claim(ledger) == []
        clock.now += 1
        stats = await ledger.tracked_stats(period=PERIOD, window=WINDOW)
        assert (stats.tracked, stats.due, stats.lag) == (1, 1, 0.0)
        clock.now += 5
        assert (await ledger.tracked_stats(period=PERIOD, window=WINDOW)).lag == 5.0
        assert await claim(ledger) == [sid("DY", 1)]
        # Claimed: checked now, leased; nobody (this owner included) gets it again before one more period.
        assert await claim(ledger, "b") == []
        clock.now += LEASE + 1
        assert await claim(ledger, "b") == []
        await ledger.settle_tracked("a", released=[sid("DY", 1)])
        clock.now += PERIOD
        assert await claim(ledger, "b") == [sid("DY", 1)]
        # A webhook teaches the state: the next re-read waits a period from then.
        clock.now += PERIOD
        await ledger.apply(event(receipt(1, 1, DeliveryStatus.DELIVERED)))
        await ledger.settle_tracked("b", released=[sid("DY", 1)])
        assert await claim(ledger) == []


async def test_a_query_never_postpones_a_tracked_receipt(ledger_url):
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)])
        clock.now += PERIOD
        assert await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)]) == 0
        assert await claim(ledger) == [sid("DY", 1)]


async def test_a_query_seeing_a_tracked_receipt_again_writes_nothing_until_the_memo_expires(ledger_url):
    # A subscription re-reads its receipts on every event: the same sight must not be a write transaction each time.
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        assert await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)]) == 1
        await ledger.settle_tracked("a", gone=[sid("DY", 1)])  # the row goes behind the memo's back
        assert await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)]) == 0  # no write: not re-tracked
        assert await ledger.track_receipts([receipt(1, 1, DeliveryStatus.DELIVERED)]) == 1  # a new status writes
        await ledger.settle_tracked("a", gone=[sid("DY", 1)])
        clock.now += TRACKED_MEMO_SECONDS
        assert await ledger.track_receipts([receipt(1, 1, DeliveryStatus.DELIVERED)]) == 1  # expired: written again
        assert (await ledger.tracked_stats(period=PERIOD, window=WINDOW)).tracked == 1


async def test_receipts_older_than_the_window_are_dropped(ledger_url):
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)])
        clock.now += WINDOW + 1
        assert await claim(ledger) == []
        assert (await ledger.tracked_stats(period=PERIOD, window=WINDOW)).tracked == 0


async def test_a_claim_takes_whole_messages_up_to_its_limit(ledger_url):
    clock = Clock()
    async with opened(ledger_url, clock) as ledger:
        await ledger.track_receipts([receipt(n, n // 3, DeliveryStatus.SENT) for n in range(9)])
        clock.now += PERIOD
        first = await ledger.claim_tracked("a", period=PERIOD, lease=LEASE, window=WINDOW, limit=2)
        assert len(first) == 6 and len({row.message_sid for row in first}) == 2
        rest = await claim(ledger, "b")
        assert len(rest) == 3 and not set(rest) & {row.receipt_sid for row in first}


@pytest.mark.parametrize(
    "ledger_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_two_ledgers_on_one_store_never_claim_the_same_receipt(ledger_url):
    """Two replicas claiming at once, again and again: every due receipt goes to exactly one of them."""
    clock = Clock()
    async with opened(ledger_url, clock) as one, opened(ledger_url, clock) as two:
        await one.track_receipts([receipt(n, n // 2, DeliveryStatus.SENT) for n in range(400)])
        clock.now += PERIOD

        async def claimer(ledger: SqlLedger, owner: str) -> list[str]:
            got: list[str] = []
            # A claim may come back empty while the other replica holds the rows it picked: ask until none is due.
            while (await ledger.tracked_stats(period=PERIOD, window=WINDOW)).due:
                got += await claim(ledger, owner, limit=7)
                await asyncio.sleep(0)
            return got

        a, b, c, d = await asyncio.gather(claimer(one, "a"), claimer(two, "b"), claimer(one, "c"), claimer(two, "d"))
        everything = a + b + c + d
        assert len(everything) == len(set(everything)) == 400
        if ledger_url.startswith("postgresql"):
            # SKIP LOCKED lets both replicas progress at once; SQLite serialises writers, so there one replica may
            # take every claim while the other waits its turn (no duplicate and no loss is the rule on both).
            assert a + c and b + d


async def test_a_webhook_naming_no_service_keeps_the_scope_a_query_tracked_in(ledger_url):
    clock = Clock()
    service = "IS" + "b" * 32
    async with opened(ledger_url, clock) as ledger:
        await ledger.track_receipts([receipt(1, 1, DeliveryStatus.SENT)], service_sid=service)
        await ledger.apply(event(receipt(1, 1, DeliveryStatus.DELIVERED)))  # no ChatServiceSid in it
        clock.now += PERIOD
        [row] = await ledger.claim_tracked("a", period=PERIOD, lease=LEASE, window=WINDOW)
        assert (row.service_sid, row.status) == (service, "delivered")
