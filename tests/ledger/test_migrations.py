"""Schema migrations: a fresh store reaches the head revision with exactly the tables the code describes; a file
written by the previous SQLite backend is imported (nothing lost, cursors kept) or, if that fails, left untouched;
`delivery-gateway migrate`; replicas migrating one PostgreSQL database at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from delivery_gateway.cli import main
from delivery_gateway.ledger import ReportDimension, create_ledger
from delivery_gateway.ledger.migrate import head_revision
from delivery_gateway.ledger.tables import VERSION_TABLE, metadata
from tests.ledger.legacy import write_legacy_ledger
from tests.ledger.scenario import SERVICE_A, SERVICE_B, duplicated_and_shuffled, storm

EVENTS = storm(seed=11, receipts=40)


async def test_a_fresh_store_is_exactly_the_described_schema(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        assert ledger.migration.before is None and ledger.migration.after == head_revision()

        def diff(connection):
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return compare_metadata(context, metadata)

        differences = await ledger._run(diff)
        assert differences == []
        again = create_ledger(ledger_url)
        if not ledger_url.startswith("memory"):  # a second start finds the head revision and changes nothing
            await again.start()
            assert again.migration.before == again.migration.after == head_revision()
            await again.close()
    finally:
        await ledger.close()


async def _state(ledger) -> dict:
    receipt_sids = sorted({e.receipt_sid for e in EVENTS if hasattr(e, "receipt_sid")})
    conversations = sorted({e.conversation_sid for e in EVENTS})
    participants = sorted({e.participant_sid for e in EVENTS if hasattr(e, "last_read_message_index")})
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    dims = [ReportDimension.STATUS, ReportDimension.ERROR_CODE, ReportDimension.CHANNEL, ReportDimension.HOUR]
    return {
        "receipts": [await ledger.receipt(s) for s in receipt_sids],
        "history": await ledger.history_many(receipt_sids),
        "horizons": [await ledger.read_horizon(p) for p in participants],
        "changes": {c: await ledger.changes_after(c, 0, limit=10_000) for c in conversations},
        "report": {s: await ledger.delivery_report(s, since, until, dims) for s in (SERVICE_A, SERVICE_B)},
        "failed": {s: await ledger.failed_deliveries(s, since, until, first=1000) for s in (SERVICE_A, SERVICE_B)},
    }


@pytest.mark.parametrize("retention", [True, False], ids=["with-retention", "before-retention"])
async def test_a_file_of_the_previous_sqlite_backend_is_imported(tmp_path, retention):
    path = tmp_path / "delivery-gateway.sqlite3"
    last = write_legacy_ledger(
        path,
        EVENTS,
        retention=retention,
        inbox=['{"EventType":"onDeliveryUpdated","pending":"1"}'],
        resends=[("CH" + "1" * 32, "IM" + "1" * 32, "IM" + "2" * 32)],
    )
    before_import = time.time()
    ledger = create_ledger(f"sqlite:///{path}")
    await ledger.start()
    reference = create_ledger("memory://")
    await reference.start()
    try:
        assert ledger.migration.before is None and ledger.migration.after == head_revision()
        await reference.apply_many(EVENTS)
        assert await _state(ledger) == await _state(reference)
        assert await ledger.last_seq() == last
        assert [body for _, body in await ledger.inbox_pending()] == ['{"EventType":"onDeliveryUpdated","pending":"1"}']
        assert await ledger.resent_as("IM" + "1" * 32) == ["IM" + "2" * 32]
        # Dedupe keys came along: an old event is a duplicate carrying its original change.
        first = await ledger.apply(EVENTS[0])
        assert first.duplicate and first.change == (await reference.apply(EVENTS[0])).change
        # New changes continue the old sequence, and nothing counts them as published before they are.
        fresh = await ledger.apply_many(duplicated_and_shuffled(storm(seed=12, receipts=3), seed=1))
        assert min(r.change.seq for r in fresh if r.change and not r.duplicate) == last + 1
        # Rows the old backend did not time-stamp count as recorded at the import.
        if not retention:
            assert (await ledger.prune(datetime.fromtimestamp(before_import - 1, UTC))).total == 0
    finally:
        await ledger.close()
        await reference.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"inbox", "seen", "receipts", "history", "changes", "horizons", "resends", "meta"}


async def test_a_pruned_old_file_keeps_its_cursors_and_watermark(tmp_path):
    path = tmp_path / "old.sqlite3"
    last = write_legacy_ledger(path, EVENTS, pruned_through=10)
    ledger = create_ledger(f"sqlite:///{path}")
    await ledger.start()
    try:
        assert await ledger.pruned_through() == 10
        assert await ledger.last_seq() == last
        seqs = [c.seq for conv in {e.conversation_sid for e in EVENTS} for c in await ledger.changes_after(conv, 0)]
        assert sorted(seqs) == list(range(11, last + 1))
    finally:
        await ledger.close()


async def test_a_failed_import_leaves_the_old_file_as_it_was(tmp_path):
    path = tmp_path / "old.sqlite3"
    write_legacy_ledger(path, EVENTS)
    db = sqlite3.connect(path)
    db.execute("UPDATE receipts SET record = 'not json' WHERE rowid = (SELECT MIN(rowid) FROM receipts)")
    db.commit()
    dump = "\n".join(db.iterdump())
    db.close()
    ledger = create_ledger(f"sqlite:///{path}")
    with pytest.raises(Exception, match="ledger store sqlite:///"):
        await ledger.start()
    db = sqlite3.connect(path)
    assert "\n".join(db.iterdump()) == dump  # not a table created, not a row lost
    db.close()


def test_migrate_command(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    assert main(["migrate", "--store-url", url]) == 0
    assert capsys.readouterr().out.strip() == f"ledger {url}: migrated from nothing to {head_revision()}"
    assert main(["migrate", "--store-url", url]) == 0
    assert capsys.readouterr().out.strip() == f"ledger {url}: already at revision {head_revision()}"


def test_migrate_command_refuses_a_redis_store_in_one_line(capsys):
    assert main(["migrate", "--store-url", "redis://127.0.0.1:6379/0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Moving off the Redis ledger" in err[0] and "DELIVERY_GATEWAY_STORE_URL" in err[0]


def test_migrate_command_names_an_unreachable_store(capsys):
    assert main(["migrate", "--store-url", "postgresql://postgres:secret@127.0.0.1:1/nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "postgresql://postgres:***@127.0.0.1:1/nothing" in err[0] and "secret" not in err[0]


@pytest.mark.postgres
async def test_replicas_starting_together_migrate_once(postgres_url):
    ledgers = [create_ledger(postgres_url) for _ in range(4)]
    await asyncio.gather(*(ledger.start() for ledger in ledgers))
    try:
        befores = sorted((ledger.migration.before or "") for ledger in ledgers)
        assert befores == ["", head_revision(), head_revision(), head_revision()]
        assert (await ledgers[0].apply(EVENTS[0])).change.seq == 1
    finally:
        for ledger in ledgers:
            await ledger.close()
