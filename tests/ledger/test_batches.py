"""Batch operations and ordered publishing, on every engine: `apply_many` is its events applied one by one in one
transaction; its after-commit hook sees changes in sequence order and no other batch commits meanwhile (not even
from another process's ledger); changes committed by a process that died before publishing are handed over first;
`inbox_add` shares commits; the webhook processor applies what is queued in one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.ledger import ApplyResult, LedgerChange, create_ledger
from delivery_gateway.ledger.events import DeliveryEvent
from delivery_gateway.pubsub import conversation_channel, create_pubsub, service_channel
from delivery_gateway.webhooks.processor import WebhookProcessor
from tests.ledger import scenario

EVENTS = scenario.duplicated_and_shuffled(scenario.storm(seed=3, receipts=25), seed=3)


@pytest.fixture
async def ledger(ledger_url):
    ledger = create_ledger(ledger_url)
    await ledger.start()
    yield ledger
    await ledger.close()


async def open_ledger(url: str):
    ledger = create_ledger(url)
    await ledger.start()
    return ledger


async def replicas(url: str, count: int) -> list:
    """`count` ledgers on one store, as separate processes would hold them (in memory: one ledger shared)."""
    if url.startswith("memory"):
        return [await open_ledger(url)] * count
    return [await open_ledger(url) for _ in range(count)]


async def close_all(ledgers: list) -> None:
    for ledger in dict.fromkeys(ledgers):
        await ledger.close()


async def test_apply_many_returns_what_applying_one_by_one_returns(ledger):
    one_by_one = await open_ledger("memory://")
    try:
        expected = [await one_by_one.apply(event) for event in EVENTS]
    finally:
        await one_by_one.close()
    got = []
    for start in range(0, len(EVENTS), 16):
        got += await ledger.apply_many(EVENTS[start : start + 16])
    assert got == expected
    assert sum(1 for r in got if r.duplicate) > 5 and sum(1 for r in got if r.change and not r.duplicate) > 20


async def reference_results(events) -> list[ApplyResult]:
    reference = await open_ledger("memory://")
    try:
        return [await reference.apply(event) for event in events]
    finally:
        await reference.close()


async def test_a_batch_that_fails_mid_write_records_nothing(ledger):
    await ledger.apply_many(EVENTS[:10])
    before = await ledger.last_seq()
    original = ledger._write_plan

    def write_then_fail(*args):  # the transaction's statements run synchronously, on the store's connection
        original(*args)
        raise ConnectionError("store lost before commit")

    ledger._write_plan = write_then_fail
    with pytest.raises(ConnectionError):
        await ledger.apply_many(EVENTS[10:20])
    ledger._write_plan = original
    assert await ledger.last_seq() == before
    assert await ledger.apply_many(EVENTS[10:20]) == (await reference_results(EVENTS[:20]))[10:20]


async def test_the_hook_sees_this_batchs_changes_in_order_and_nothing_commits_meanwhile(ledger_url):
    a, b, reader = ledgers = await replicas(ledger_url, 3)
    try:
        seen: list[tuple[str, list[int]]] = []
        during: list[int] = []
        hook_started = asyncio.Event()

        async def slow_hook(results: Sequence[ApplyResult], unpublished: Sequence[LedgerChange]) -> None:
            seen.append(("a", [c.seq for c in unpublished]))
            hook_started.set()
            for _ in range(5):
                during.append(await reader.last_seq())
                await asyncio.sleep(0.05)

        async def quick_hook(results: Sequence[ApplyResult], unpublished: Sequence[LedgerChange]) -> None:
            seen.append(("b", [c.seq for c in unpublished]))

        first = asyncio.create_task(a.apply_many(EVENTS[:30], after_commit=slow_hook))
        await hook_started.wait()
        second = asyncio.create_task(b.apply_many(EVENTS[30:60], after_commit=quick_hook))
        first_results, second_results = await asyncio.gather(first, second)
        a_seqs = [r.change.seq for r in first_results if r.change and not r.duplicate]
        b_seqs = [r.change.seq for r in second_results if r.change and not r.duplicate]
        assert seen == [("a", a_seqs), ("b", b_seqs)]
        assert a_seqs == sorted(a_seqs) and b_seqs == sorted(b_seqs) and max(a_seqs) < min(b_seqs)
        assert set(during) == {max(a_seqs)}  # b could not commit while a's hook ran
    finally:
        await close_all(ledgers)


async def test_changes_of_a_process_that_died_before_publishing_are_handed_over_first(ledger_url):
    dying, survivor = ledgers = await replicas(ledger_url, 2)
    try:
        await survivor.apply_many(EVENTS[:5])  # no hook: published at commit
        published = await survivor.last_seq()

        async def die(results, unpublished) -> None:
            raise asyncio.CancelledError  # the process is gone before it published anything

        with pytest.raises(asyncio.CancelledError):
            await dying.apply_many(EVENTS[5:15], after_commit=die)
        committed = await survivor.last_seq()
        assert committed > published
        handed: list[list[int]] = []

        async def publish(results, unpublished) -> None:
            handed.append([c.seq for c in unpublished])

        assert await survivor.publish_pending(publish) == committed - published
        assert await survivor.publish_pending(publish) == 0  # handed over once
        later = await survivor.apply_many(EVENTS[15:25], after_commit=publish)
        new = [r.change.seq for r in later if r.change and not r.duplicate]
        assert handed == [list(range(published + 1, committed + 1)), [], new]
        assert new and min(new) == committed + 1
    finally:
        await close_all(ledgers)


async def test_a_failing_hook_is_logged_and_not_repeated(ledger, caplog):
    calls: list[list[int]] = []

    async def flaky(results, unpublished) -> None:
        calls.append([c.seq for c in unpublished])
        raise RuntimeError("broker down")

    results = await ledger.apply_many(EVENTS[:8], after_commit=flaky)
    assert "after-commit hook failed" in caplog.text
    await ledger.apply_many(EVENTS[8:12], after_commit=flaky)
    first = [r.change.seq for r in results if r.change and not r.duplicate]
    assert calls[0] == first and not set(calls[1]) & set(first)


async def test_inbox_add_calls_share_commits(ledger):
    batches: list[int] = []
    original = ledger.inbox_add_many

    async def counting(bodies):
        batches.append(len(bodies))
        return await original(bodies)

    ledger.inbox_add_many = counting
    bodies = [f'{{"n":"{n}"}}' for n in range(300)]
    ids = await asyncio.gather(*(ledger.inbox_add(body) for body in bodies))
    assert len(set(ids)) == 300 and ids == sorted(ids)
    assert sum(batches) == 300 and len(batches) < 10
    assert [body for _, body in await ledger.inbox_pending(limit=1000)] == bodies
    await ledger.inbox_done_many(ids[:299])
    assert await ledger.inbox_pending() == [(ids[299], bodies[299])]
    more = await ledger.inbox_add_many(["x", "y"])
    assert more == [ids[-1] + 1, ids[-1] + 2]  # ids are never reused


async def test_inbox_add_fails_for_every_waiting_caller_when_the_store_fails(ledger):
    async def broken(bodies):
        raise ConnectionError("store down")

    ledger.inbox_add_many = broken
    outcomes = await asyncio.gather(*(ledger.inbox_add("{}") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_the_processor_applies_what_is_queued_in_one_batch_and_publishes_in_order(ledger):
    broker = create_pubsub("memory://", queue_size=10_000)
    await broker.start()
    calls: list[int] = []
    original = ledger.apply_many

    async def counting(events, **kwargs):
        events = list(events)
        calls.append(len(events))
        return await original(events, **kwargs)

    ledger.apply_many = counting
    processor = WebhookProcessor(ledger, broker, max_batch=50)
    conversation = next(e.conversation_sid for e in EVENTS)
    try:
        await processor.start()
        async with (
            broker.subscribe(conversation_channel(conversation)) as on_conversation,
            broker.subscribe(service_channel(scenario.SERVICE_A)) as on_service,
        ):
            ids = await ledger.inbox_add_many(["{}"] * len(EVENTS))
            for entry_id, event in zip(ids, EVENTS, strict=True):
                processor.submit(entry_id, event)
            await processor.drain()
            assert max(calls) > 1 and sum(calls) == len(EVENTS) and len(calls) < len(EVENTS) / 2
            assert await ledger.inbox_pending() == []
            for subscriber, expected in (
                (on_conversation, await ledger.changes_after(conversation, 0, limit=10_000)),
                (on_service, await ledger.service_changes_after(scenario.SERVICE_A, 0, limit=10_000)),
            ):
                got = [LedgerChange.from_json(await subscriber.__anext__()) for _ in expected]
                assert got == expected
    finally:
        await processor.close()
        await broker.close()


async def test_inbox_entries_of_a_batch_are_done_once_its_hook_returned(ledger):
    """`apply_many(inbox_done=...)`: the entries stay while the hook runs (a crash then reprocesses them) and are
    gone once it returned, in the transaction marking the changes published; without a hook, in the batch's
    own transaction; and a batch whose transaction fails leaves them all."""
    ids = await ledger.inbox_add_many([f'{{"n":"{n}"}}' for n in range(6)])
    pending_in_hook: list[list[int]] = []

    async def hook(results: Sequence[ApplyResult], unpublished: Sequence[LedgerChange]) -> None:
        pending_in_hook.append([entry_id for entry_id, _ in await ledger.inbox_pending()])

    await ledger.apply_many(EVENTS[:10], after_commit=hook, inbox_done=ids[:2])
    assert pending_in_hook == [ids]
    assert [entry_id for entry_id, _ in await ledger.inbox_pending()] == ids[2:]
    await ledger.apply_many(EVENTS[:10], after_commit=hook, inbox_done=ids[2:3])  # duplicates only: no change
    assert [entry_id for entry_id, _ in await ledger.inbox_pending()] == ids[3:]
    await ledger.apply_many(EVENTS[10:20], inbox_done=ids[3:4])
    assert [entry_id for entry_id, _ in await ledger.inbox_pending()] == ids[4:]

    class NotAnEvent:
        dedupe_key = "not-an-event"

    with pytest.raises(TypeError):
        await ledger.apply_many([*EVENTS[20:30], NotAnEvent()], after_commit=hook, inbox_done=ids[4:])
    assert [entry_id for entry_id, _ in await ledger.inbox_pending()] == ids[4:]


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(list(DeliveryStatus)),
    error_code=st.one_of(st.none(), st.just(0), st.integers(1, 99_999)),
    participant=st.one_of(st.none(), st.just("MB" + "1" * 32)),
    dates=st.sampled_from(
        [None, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:05.500000+00:00", "2026-03-01T10:00:00Z"]
    ),
)
def test_a_delivery_event_reads_as_the_receipt_from_dict_reads(status, error_code, participant, dates):
    """`DeliveryEvent.as_receipt` builds the record directly: field for field what `ReceiptRecord.from_dict`
    reads from the event's values (statuses, 0 as no error code, dates parsed, the reported status)."""
    e = DeliveryEvent(
        conversation_sid="CH" + "2" * 32,
        message_sid="IM" + "3" * 32,
        receipt_sid="DY" + "4" * 32,
        status=status,
        participant_sid=participant,
        channel_message_sid=None if participant else "SM" + "5" * 32,
        error_code=error_code,
        date_created=dates,
        date_updated=dates,
        service_sid="IS" + "6" * 32,
        account_sid=None,
    )
    expected = ReceiptRecord.from_dict(
        {
            "sid": e.receipt_sid,
            "conversation_sid": e.conversation_sid,
            "message_sid": e.message_sid,
            "participant_sid": e.participant_sid,
            "account_sid": e.account_sid,
            "chat_service_sid": e.service_sid,
            "channel_message_sid": e.channel_message_sid,
            "status": e.status.value,
            "error_code": e.error_code,
            "date_created": e.date_created,
            "date_updated": e.date_updated,
        }
    )
    assert e.as_receipt() == expected
