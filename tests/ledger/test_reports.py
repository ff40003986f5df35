"""Questions across conversations, on every engine: delivery reports, failed deliveries and the service-wide
change stream answer exactly what a plain recomputation from the events says, and their queries use indexes.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from delivery_gateway.delivery.error_codes import error_codes
from delivery_gateway.delivery.statuses import is_terminal
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import InvalidCursor, ReportDimension, ReportRow, create_ledger
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.ledger.reports import failed_statement, report_statements
from delivery_gateway.ledger.rows import channel_of, epoch_of
from delivery_gateway.ledger.tables import changes
from tests.ledger import scenario

D = ReportDimension
EVENTS = scenario.duplicated_and_shuffled(scenario.storm(seed=5, receipts=120), seed=5)
DELIVERIES = [e for e in EVENTS if isinstance(e, DeliveryEvent)]
SINCE = scenario.T0 - timedelta(hours=1)
UNTIL = scenario.T0 + timedelta(days=4)


@pytest.fixture
async def ledger(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    await ledger.apply_many(EVENTS)
    yield ledger
    await ledger.close()


def expected_report(service: str, since: datetime, until: datetime, dims: list[D]) -> list[ReportRow]:
    """The report recomputed from the events: each (receipt, status) once, at Twilio's time of that status."""
    reached = {}
    for e in DELIVERIES:
        reached.setdefault((e.receipt_sid, e.status), e)
    counts: Counter = Counter()
    for e in reached.values():
        at = epoch_of(e.date_updated, 0)
        if e.service_sid != service or not since.timestamp() <= at < until.timestamp():
            continue
        values = {
            D.STATUS: e.status,
            D.ERROR_CODE: e.error_code,
            D.CHANNEL: channel_of(_record(e)),
            D.HOUR: datetime.fromtimestamp(at - at % 3600, UTC),
            D.DAY: datetime.fromtimestamp(at - at % 86400, UTC),
        }
        counts[tuple((d.value, values[d]) for d in dims)] += 1
    rows = [ReportRow(count=n, **dict(key)) for key, n in counts.items()]
    epoch = datetime.fromtimestamp(0, UTC)
    order = list(DeliveryStatus)
    return sorted(
        rows or ([ReportRow(count=0)] if not dims else []),
        key=lambda r: (
            r.day or epoch,
            r.hour or epoch,
            order.index(r.status) if r.status else -1,
            r.error_code if r.error_code is not None else -1,
            r.channel or "",
        ),
    )


def _record(event: DeliveryEvent):
    from delivery_gateway.kernel.records import ReceiptRecord

    return ReceiptRecord(
        sid=event.receipt_sid,
        conversation_sid=event.conversation_sid,
        message_sid=event.message_sid,
        channel_message_sid=event.channel_message_sid,
    )


GROUPINGS = [
    [],
    [D.STATUS],
    [D.ERROR_CODE],
    [D.CHANNEL, D.STATUS],
    [D.HOUR],
    [D.DAY, D.STATUS, D.ERROR_CODE, D.CHANNEL],
    [D.HOUR, D.DAY],
]
WINDOWS = [
    (SINCE, UNTIL),  # whole hours
    (scenario.T0 + timedelta(minutes=17, seconds=3), scenario.T0 + timedelta(days=2, minutes=41)),  # ragged ends
    (scenario.T0 + timedelta(hours=5, minutes=10), scenario.T0 + timedelta(hours=5, minutes=50)),  # inside an hour
    (scenario.T0 + timedelta(hours=5, minutes=10), scenario.T0 + timedelta(hours=6, minutes=50)),  # two part-hours
    (scenario.T0 - timedelta(days=30), scenario.T0 - timedelta(days=29)),  # nothing there
]


async def test_delivery_report_equals_a_recomputation_for_every_grouping_and_window(ledger):
    for service, (since, until), dims in itertools.product(
        (scenario.SERVICE_A, scenario.SERVICE_B), WINDOWS, GROUPINGS
    ):
        got = await ledger.delivery_report(service, since, until, dims)
        assert got == expected_report(service, since, until, dims), (service, since, until, dims)
    total = await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL)
    assert total[0].count > 150


async def test_delivery_report_ignores_duplicates_and_late_events(ledger):
    before = await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL, [D.STATUS, D.HOUR])
    await ledger.apply_many(list(reversed(EVENTS)))  # every event again, in the reverse order
    assert await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL, [D.STATUS, D.HOUR]) == before


async def test_delivery_report_refuses_bad_windows(ledger):
    with pytest.raises(ValueError, match="until"):
        await ledger.delivery_report(scenario.SERVICE_A, UNTIL, SINCE)
    with pytest.raises(ValueError, match="time zone"):
        await ledger.delivery_report(scenario.SERVICE_A, datetime(2026, 1, 1), UNTIL)


def expected_failures(service: str, since: datetime, until: datetime) -> list[tuple[int, str]]:
    """(failed at, receipt) of receipts whose last status is failed/undelivered, newest first."""
    final: dict[str, DeliveryEvent] = {}
    for e in sorted(DELIVERIES, key=lambda e: (e.date_updated, e.status.value)):
        final[e.receipt_sid] = e
    out = [
        (epoch_of(e.date_updated, 0), e.receipt_sid)
        for e in final.values()
        if e.service_sid == service
        and is_terminal(e.status)
        and since.timestamp() <= epoch_of(e.date_updated, 0) < until.timestamp()
    ]
    return sorted(out, reverse=True)


async def test_failed_deliveries_newest_first_in_keyset_pages(ledger):
    for service in (scenario.SERVICE_A, scenario.SERVICE_B):
        expected = expected_failures(service, SINCE, UNTIL)
        assert len(expected) > 5
        items, after, pages = [], None, 0
        while True:
            page = await ledger.failed_deliveries(service, SINCE, UNTIL, first=7, after=after)
            items += page.items
            pages += 1
            if not page.has_next_page:
                break
            after = page.end_cursor
        assert [(int(i.failed_at.timestamp()), i.receipt_sid) for i in items] == expected
        assert pages == -(-len(expected) // 7)
        for item in items:
            assert item.status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED)
            assert item.error_code in scenario.ERROR_CODES
            assert item.channel in ("sms", "whatsapp", "other") and item.participant_sid.startswith("MB")
            assert item.conversation_sid.startswith("CH") and item.message_sid.startswith("IM")


async def test_failed_deliveries_filters(ledger):
    service = scenario.SERVICE_A
    every = (await ledger.failed_deliveries(service, SINCE, UNTIL, first=1000)).items
    codes = {30003, 63016}
    only = (await ledger.failed_deliveries(service, SINCE, UNTIL, error_codes=codes, first=1000)).items
    assert only == [i for i in every if i.error_code in codes] and only
    retryable = (await ledger.failed_deliveries(service, SINCE, UNTIL, retryable=True, first=1000)).items
    others = (await ledger.failed_deliveries(service, SINCE, UNTIL, retryable=False, first=1000)).items
    table = error_codes()
    assert retryable == [i for i in every if i.error_code in table and table[i.error_code].retryable]
    assert others == [i for i in every if i not in retryable]
    assert retryable and others
    window = (scenario.T0 + timedelta(days=1), scenario.T0 + timedelta(days=2))
    inside = (await ledger.failed_deliveries(service, *window, first=1000)).items
    assert inside == [i for i in every if window[0] <= i.failed_at < window[1]]
    empty = await ledger.failed_deliveries(service, SINCE, UNTIL, first=0)
    assert empty.items == [] and empty.has_next_page


async def test_a_receipt_never_updated_counts_at_its_creation(ledger_url):
    """Twilio leaves DateUpdated null until a receipt is updated: a receipt created failed has been failed since
    its DateCreated, which is when reports count it, whenever the gateway learns it (a late webhook, a
    reconciliation hours later)."""
    created = datetime(2026, 3, 2, 10, 15, 7, tzinfo=UTC)
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        event = scenario.receipt_event("CH" + "1" * 32, "IM" + "1" * 32, "DY" + "1" * 32, "failed", created)
        event = DeliveryEvent(**{**event.__dict__, "date_updated": None, "error_code": 30008})
        await ledger.apply(event)
        (item,) = (await ledger.failed_deliveries(scenario.SERVICE_A, SINCE, UNTIL)).items
        assert item.failed_at == created
        (entry,) = await ledger.history(event.receipt_sid)
        assert entry.at == scenario.iso(created)
        hours = await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL, [D.HOUR])
        assert hours == [ReportRow(count=1, hour=created.replace(minute=0, second=0))]
    finally:
        await ledger.close()


@pytest.mark.parametrize("cursor", ["", "abc", "12", ":DY1", "-5:DY1"])
async def test_failed_deliveries_refuse_foreign_cursors(ledger, cursor):
    with pytest.raises(InvalidCursor):
        await ledger.failed_deliveries(scenario.SERVICE_A, SINCE, UNTIL, after=cursor)


async def test_failed_deliveries_refuse_page_sizes_out_of_range(ledger):
    for first in (-1, 1001):
        with pytest.raises(ValueError, match="first"):
            await ledger.failed_deliveries(scenario.SERVICE_A, SINCE, UNTIL, first=first)


async def test_service_stream_is_every_change_of_the_service_in_order_and_resumable(ledger):
    conversations = sorted({e.conversation_sid for e in EVENTS})
    everything = []
    for conversation in conversations:
        everything += await ledger.changes_after(conversation, 0, limit=100_000)
    everything.sort(key=lambda c: c.seq)
    for service in (scenario.SERVICE_A, scenario.SERVICE_B):
        mine = [c for c in everything if c.payload.get("service_sid") == service]
        assert await ledger.service_changes_after(service, 0, limit=100_000) == mine
        # Resumed in small pages from each cursor: the same stream, nothing skipped, nothing repeated.
        resumed, cursor = [], 0
        while page := await ledger.service_changes_after(service, cursor, limit=9):
            resumed += page
            cursor = page[-1].seq
        assert resumed == mine
        failing = await ledger.service_changes_after(
            service, 0, statuses=[DeliveryStatus.FAILED, "undelivered"], limit=100_000
        )
        assert failing == [
            c for c in mine if c.kind.value == "delivery" and c.receipt.status.value in ("failed", "undelivered")
        ]
        assert failing
        assert await ledger.service_changes_after(service, 0, statuses=[], limit=100_000) == mine
    assert await ledger.service_changes_after("IS" + "f" * 32, 0) == []


async def test_pruning_drops_whole_report_hours_before_the_horizon(ledger):
    ledger.clock = lambda: scenario.T0.timestamp() + 86400 * 60  # everything was recorded long ago...
    cutoff = scenario.T0 + timedelta(days=1, minutes=30)
    hours_before = await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL, [D.HOUR])
    await ledger.prune(cutoff)
    after = await ledger.delivery_report(scenario.SERVICE_A, SINCE, UNTIL, [D.HOUR])
    # ...by the recording clock history stays; hours wholly before the cutoff (by Twilio's time) are gone.
    assert after == [r for r in hours_before if r.hour.timestamp() + 3600 > cutoff.timestamp()]


# --- the queries use indexes ---


async def _plan(ledger, statement) -> str:
    def explain(conn) -> str:
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        if ledger.store.engine == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            rows = conn.execute(text(f"EXPLAIN {compiled}")).all()
            conn.execute(text("RESET enable_seqscan"))
            return "\n".join(r[0] for r in rows)
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
        return "\n".join(str(r[-1]) for r in rows)

    return await ledger._run(explain)


def _uses_index(plan: str, engine: str, index: str) -> bool:
    if engine == "postgresql":
        kinds = ("Index Scan using", "Index Scan Backward using", "Index Only Scan using", "Bitmap Index Scan on")
        return any(f"{kind} {index}" in plan for kind in kinds)
    if index.startswith("pk_"):  # SQLite names a composite primary key's index itself
        index = "sqlite_autoindex_" + index.removeprefix("pk_")
    return "SEARCH ledger_" in plan and f"INDEX {index}" in plan


async def test_report_and_failure_queries_use_their_indexes(ledger):
    engine = ledger.store.engine
    since = scenario.T0 + timedelta(minutes=17)
    statements = report_statements(
        scenario.SERVICE_A, since, UNTIL - timedelta(minutes=5), [D.STATUS, D.HOUR, D.ERROR_CODE]
    )
    assert len(statements) == 3  # whole hours + two ragged edges
    hourly, *edges = statements
    assert _uses_index(await _plan(ledger, hourly), engine, "pk_ledger_report_hours"), await _plan(ledger, hourly)
    for edge in edges:
        plan = await _plan(ledger, edge)
        assert _uses_index(plan, engine, "ix_ledger_history_report"), plan
    failed = failed_statement(scenario.SERVICE_A, SINCE, UNTIL, retryable=True, after="1772400000:DYzz")
    plan = await _plan(ledger, failed)
    assert _uses_index(plan, engine, "ix_ledger_receipts_failed"), plan
    if engine == "sqlite":
        assert "TEMP B-TREE" not in plan  # newest first straight from the index, no sort
    from sqlalchemy import select

    stream = (
        select(changes.c.seq)
        .where(changes.c.service_sid == scenario.SERVICE_A, changes.c.seq > 10)
        .order_by(changes.c.seq)
        .limit(50)
    )
    plan = await _plan(ledger, stream)
    assert _uses_index(plan, engine, "ix_ledger_changes_service"), plan
