"""Delivery reports over a big ledger: loads N recorded status changes (default 1M, over 30 days) through the
ledger's own write path, then times 30-day reports, failed-delivery pages and the service stream.

Run by itself: `python -m bench.ledger_report [--rows 1000000] [--engine sqlite|postgresql|both]`.
Prints each query's median time and, as the reference measured in the same run, the same report counted
directly over `ledger_history` (what the hourly counts save). Never asserts thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bench.ledger_store import fresh_store
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import ReportDimension as D
from delivery_gateway.ledger import create_ledger
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.ledger.tables import history

SERVICE = "IS" + "a" * 32
OTHER_SERVICE = "IS" + "b" * 32
END = datetime(2026, 6, 1, tzinfo=UTC)
START = END - timedelta(days=30)
LIVES = [["sent", "delivered"], ["sent", "delivered", "read"], ["sent", "undelivered"], ["failed"], ["sent"]]
WEIGHTS = [45, 35, 8, 5, 7]
CODES = [30003, 30005, 30006, 30007, 30008, 63016]
CHANNELS = ["SM", "SM", "WA", "MM"]
BATCH = 2000


def events(rows: int, seed: int = 1):
    """About `rows` delivery events: receipts living their lives over 30 days, 90% in SERVICE."""
    rng = random.Random(seed)
    span = int((END - START).total_seconds()) - 3600
    made = n = 0
    batch: list[DeliveryEvent] = []
    while made < rows:
        life = rng.choices(LIVES, WEIGHTS)[0]
        code = rng.choice(CODES)
        receipt = f"DY{n:032x}"
        conversation = f"CH{n % 5000:032x}"
        at = START + timedelta(seconds=rng.randrange(span))
        channel_sid = f"{rng.choice(CHANNELS)}{n:032x}"
        service = SERVICE if n % 10 else OTHER_SERVICE
        for status in life:
            batch.append(
                DeliveryEvent(
                    conversation_sid=conversation,
                    message_sid=f"IM{n // 2:032x}",
                    receipt_sid=receipt,
                    status=DeliveryStatus(status),
                    participant_sid=f"MB{n:032x}",
                    channel_message_sid=channel_sid,
                    error_code=code if status in ("failed", "undelivered") else None,
                    date_updated=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    service_sid=service,
                )
            )
            at += timedelta(seconds=rng.randrange(1, 600))
            made += 1
        n += 1
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def median_time(run: Callable[[], Awaitable[object]], repeat: int = 5) -> float:
    await run()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def bench(engine: str, rows: int) -> None:
    async with fresh_store(engine) as url:
        ledger = create_ledger(url)
        await ledger.start()
        try:
            started = time.perf_counter()
            loaded = 0
            for batch in events(rows):
                await ledger.apply_many(batch)
                loaded += len(batch)
            load_s = time.perf_counter() - started
            recorded = await ledger.count_rows(history)
            print(
                f"\n[{engine}] loaded {loaded} events ({recorded} status changes) in {load_s:.0f} s: "
                f"{loaded / load_s:.0f} events/s through apply_many (batches of {BATCH})"
            )
            ragged_start = START + timedelta(minutes=7, seconds=13)
            queries: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("report 30 d, no grouping", lambda: ledger.delivery_report(SERVICE, START, END)),
                ("report 30 d by STATUS", lambda: ledger.delivery_report(SERVICE, START, END, [D.STATUS])),
                (
                    "report 30 d by STATUS, ERROR_CODE, CHANNEL",
                    lambda: ledger.delivery_report(SERVICE, START, END, [D.STATUS, D.ERROR_CODE, D.CHANNEL]),
                ),
                (
                    "report 30 d by HOUR, STATUS",
                    lambda: ledger.delivery_report(SERVICE, START, END, [D.HOUR, D.STATUS]),
                ),
                (
                    "report 30 d by all five, ragged ends",
                    lambda: ledger.delivery_report(SERVICE, ragged_start, END, list(D)),
                ),
                ("failed deliveries, first 50", lambda: ledger.failed_deliveries(SERVICE, START, END, first=50)),
                (
                    "failed deliveries, retryable, first 100",
                    lambda: ledger.failed_deliveries(SERVICE, START, END, retryable=True, first=100),
                ),
                (
                    "service stream, 500 after the middle",
                    lambda: ledger.service_changes_after(SERVICE, loaded // 2, limit=500),
                ),
            ]

            async def direct() -> object:  # the reference: the same report counted over every history row
                stmt = (
                    select(history.c.status, func.count())
                    .where(
                        history.c.service_sid == SERVICE,
                        history.c.at_epoch >= int(START.timestamp()),
                        history.c.at_epoch < int(END.timestamp()),
                    )
                    .group_by(history.c.status)
                )
                return await ledger._read(stmt)

            reference = await median_time(direct, repeat=3)
            print(f"  {'reference: by STATUS counted over ledger_history':52s} {reference * 1000:9.1f} ms")
            for name, run in queries:
                took = await median_time(run)
                print(f"  {name:52s} {took * 1000:9.1f} ms   ({reference / took:,.1f}x the reference's speed)")
        finally:
            await ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="delivery events to load (default 1M)")
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    for engine in engines:
        asyncio.run(bench(engine, args.rows))


if __name__ == "__main__":
    main()
