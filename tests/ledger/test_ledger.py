"""The delivery ledger: monotonic receipts, history, idempotence, order-insensitivity, durability, cursors.

Runs each property against every engine (in-memory SQLite, a SQLite file, PostgreSQL when reachable).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import ChangeKind, create_ledger
from tests.ledger.scenario import LIVES
from tests.live.events_factory import delivery, horizon, sids

CONV = "CH" + "1" * 32
MSG = "IM" + "2" * 32
RECEIPTS = sids("DY", 3)
PARTICIPANTS = sids("MB", 2)


async def test_receipt_never_moves_backwards_and_keeps_history(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        r = RECEIPTS[0]
        first = await ledger.apply(delivery(CONV, MSG, r, "delivered", 2))
        assert first.change is not None and first.change.previous_status is None
        late = await ledger.apply(delivery(CONV, MSG, r, "sent", 1))
        assert late.change is None and late.recorded  # kept in history, current unchanged
        read = await ledger.apply(delivery(CONV, MSG, r, "read", 3))
        assert read.change.previous_status is DeliveryStatus.DELIVERED
        assert read.change.seq > first.change.seq
        dup = await ledger.apply(delivery(CONV, MSG, r, "read", 3))
        assert dup.duplicate and dup.change.seq == read.change.seq
        current = await ledger.receipt(r)
        assert current.status is DeliveryStatus.READ
        history = await ledger.history(r)
        assert [h.status.value for h in history] == ["sent", "delivered", "read"]
        assert [c.seq for c in await ledger.changes_after(CONV, 0)] == [first.change.seq, read.change.seq]
        assert await ledger.changes_after(CONV, read.change.seq) == []
        assert [x.sid for x in await ledger.receipts_for_message(MSG)] == [r]
    finally:
        await ledger.close()


async def test_terminal_is_final(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        r = RECEIPTS[1]
        await ledger.apply(delivery(CONV, MSG, r, "failed", 1, error_code=30008))
        late = await ledger.apply(delivery(CONV, MSG, r, "read", 5))
        assert late.change is None
        current = await ledger.receipt(r)
        assert current.status is DeliveryStatus.FAILED and current.error_code == 30008
    finally:
        await ledger.close()


async def test_read_horizon_only_moves_forward(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        p = PARTICIPANTS[0]
        a = await ledger.apply(horizon(CONV, p, 5))
        assert a.change.kind is ChangeKind.READ_HORIZON and a.change.payload["previous_index"] is None
        assert (await ledger.apply(horizon(CONV, p, 3))).change is None
        b = await ledger.apply(horizon(CONV, p, 7))
        assert b.change.payload["previous_index"] == 5
        assert await ledger.read_horizon(p) == 7
    finally:
        await ledger.close()


async def test_inbox_and_resend_links(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    try:
        one = await ledger.inbox_add('{"a":"1"}')
        two = await ledger.inbox_add('{"a":"2"}')
        assert [i for i, _ in await ledger.inbox_pending()] == [one, two]
        await ledger.inbox_done(one)
        assert await ledger.inbox_pending() == [(two, '{"a":"2"}')]
        new1, new2 = sids("IM", 2)
        await ledger.record_resend(CONV, MSG, new1)
        await ledger.record_resend(CONV, MSG, new2)
        assert await ledger.resent_as(MSG) == [new1, new2]
        assert await ledger.resend_of(new2) == MSG
        assert await ledger.resend_of(MSG) is None
    finally:
        await ledger.close()


async def test_sqlite_survives_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    ledger = create_ledger(url)
    await ledger.start()
    await ledger.apply(delivery(CONV, MSG, RECEIPTS[0], "delivered", 2))
    entry = await ledger.inbox_add("{}")
    # No close(): the process "dies" here; a new ledger opens the same file.
    again = create_ledger(url)
    await again.start()
    try:
        assert (await again.receipt(RECEIPTS[0])).status is DeliveryStatus.DELIVERED
        assert [i for i, _ in await again.inbox_pending()] == [entry]
        assert await again.last_seq() == 1
    finally:
        await again.close()
        await ledger.close()


# Order-insensitivity


def _events(lives: list[int], horizons: list[int]):
    out = []
    for receipt, life in zip(RECEIPTS, lives, strict=False):
        for step, status in enumerate(LIVES[life], start=1):
            code = 30008 if status in ("failed", "undelivered") else None
            out.append(delivery(CONV, MSG, receipt, status, step * 10, error_code=code))
    for participant, index in zip(PARTICIPANTS, horizons, strict=False):
        for i in range(index + 1):
            out.append(horizon(CONV, participant, i))
    return out


async def _final_state(url: str, events) -> tuple:
    ledger = create_ledger(url)
    await ledger.start()
    try:
        for event in events:
            await ledger.apply(event)
        receipts = tuple(
            (r.sid, r.status, r.error_code, r.date_updated) for r in await ledger.receipts_for_message(MSG)
        )
        histories = await ledger.history_many(RECEIPTS)
        history = tuple(
            (sid, tuple(sorted((h.status.value, h.at, h.error_code) for h in entries)))
            for sid, entries in sorted(histories.items())
        )
        horizons = tuple([await ledger.read_horizon(p) for p in PARTICIPANTS])
        changes = len(await ledger.changes_after(CONV, 0))
        return receipts, history, horizons, changes
    finally:
        await ledger.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lives=st.lists(st.integers(0, len(LIVES) - 1), min_size=1, max_size=3),
    horizons=st.lists(st.integers(0, 4), max_size=2),
    data=st.data(),
)
def test_any_permutation_with_duplicates_gives_the_same_state(lives, horizons, data):
    """The merge rules are one implementation whatever the engine (test_parity.py holds the engines together),
    so the property runs on the in-memory engine."""
    events = _events(lives, horizons)
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=8))))
    in_order = asyncio.run(_final_state("memory://", events))
    receipts, history, horizon_state, _ = asyncio.run(_final_state("memory://", shuffled))
    assert (receipts, history, horizon_state) == in_order[:3]
    # The in-order replay's final statuses are the last of each life: the ledger agrees.
    expected = {r: LIVES[life][-1] for r, life in zip(RECEIPTS, lives, strict=False)}
    assert {sid: status.value for sid, status, _, _ in receipts} == expected


@pytest.mark.postgres
async def test_postgres_ledger_is_shared_between_instances(postgres_url):
    a, b = create_ledger(postgres_url), create_ledger(postgres_url)
    await a.start()
    await b.start()
    try:
        first = await a.apply(delivery(CONV, MSG, RECEIPTS[0], "sent", 1))
        dup = await b.apply(delivery(CONV, MSG, RECEIPTS[0], "sent", 1))
        assert dup.duplicate and dup.change.seq == first.change.seq
        results = await asyncio.gather(
            *(
                (a if i % 2 else b).apply(delivery(CONV, MSG, RECEIPTS[1], s, n))
                for i, (s, n) in enumerate([("sent", 1), ("delivered", 2), ("read", 3)] * 3)
            )
        )
        assert sum(1 for r in results if not r.duplicate) == 3
        assert (await b.receipt(RECEIPTS[1])).status is DeliveryStatus.READ
        seqs = [c.seq for c in await a.changes_after(CONV, 0)]
        assert seqs == list(range(1, len(seqs) + 1))  # one sequence, no gap
    finally:
        await a.close()
        await b.close()
