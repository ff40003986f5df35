"""Ledger engine parity: the same event sequences (duplicates, shuffles, stale events) through every engine
`create_ledger(url)` builds, compared with each other: apply results, receipts, histories, change logs, the
service-wide stream, delivery reports and failed deliveries.

Add an engine by adding its URL factory to `ENGINES`. PostgreSQL takes part whenever it answers (always in CI,
where DELIVERY_GATEWAY_REQUIRE_POSTGRES is set); the others need nothing.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.ledger import DeliveryLedger, ReportDimension, create_ledger
from delivery_gateway.ledger.events import (
    ConversationEvent,
    DeliveryEvent,
    LedgerEvent,
    MessageEvent,
    ReadHorizonEvent,
)
from tests.ledger import scenario
from tests.postgres_support import REQUIRE_ENV, fresh_postgres_url, postgres_available, require_postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONV = "CH" + "a0" * 16
OTHER_CONV = "CH" + "b0" * 16
MSG = "IM" + "a1" * 16
MSG2 = "IM" + "a2" * 16
R1, R2, R3 = ("DY" + f"{n:02x}" * 16 for n in (1, 2, 3))
P1, P2 = "MB" + "c1" * 16, "MB" + "c2" * 16
SERVICE = "IS" + "d1" * 16


@dataclass
class EngineContext:
    tmp_path: Path
    count: int = 0

    def fresh(self) -> int:
        self.count += 1
        return self.count


def _sqlite(ctx: EngineContext) -> str:
    return f"sqlite:///{ctx.tmp_path / f'parity-{ctx.fresh()}.sqlite3'}"


# name -> URL of a fresh, empty ledger of that engine. The first one is the reference the others must equal.
ENGINES: dict[str, Callable[[EngineContext], str]] = {
    "memory": lambda ctx: "memory://",
    "sqlite": _sqlite,
    "postgresql": lambda ctx: fresh_postgres_url(),
}


@pytest.fixture
def engines(tmp_path: Path) -> dict[str, Callable[[], str]]:
    """Every engine that can run here, as factories of fresh ledger URLs."""
    if not postgres_available() and os.environ.get(REQUIRE_ENV):
        require_postgres()  # fails: PostgreSQL is required here (CI); elsewhere it sits this one out
    ctx = EngineContext(tmp_path)
    available = {n: f for n, f in ENGINES.items() if n != "postgresql" or postgres_available()}
    return {name: (lambda factory=factory: factory(ctx)) for name, factory in available.items()}


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def delivery(
    receipt: str,
    status: S,
    seconds: float,
    *,
    message: str = MSG,
    participant: str | None = None,
    channel_message: str | None = None,
    error_code: int | None = None,
    service: str | None = SERVICE,
) -> DeliveryEvent:
    return DeliveryEvent(
        conversation_sid=CONV,
        message_sid=message,
        receipt_sid=receipt,
        status=status,
        participant_sid=participant,
        channel_message_sid=channel_message,
        error_code=error_code,
        date_created=at(0),
        date_updated=at(seconds),
        service_sid=service,
        source="api",
    )


def horizon(participant: str, index: int | None, conversation: str = CONV) -> ReadHorizonEvent:
    return ReadHorizonEvent(
        conversation_sid=conversation, participant_sid=participant, last_read_message_index=index, identity="alice"
    )


def message(
    action: str, sid: str = MSG, *, media: list[dict[str, Any]] | None = None, body: str = "hi"
) -> MessageEvent:
    return MessageEvent(
        action=action,
        conversation_sid=CONV,
        message_sid=sid,
        index=3,
        author="alice",
        body=body,
        attributes='{"a": [1, {"b": null}]}',
        media=media,
        date_created=at(0),
        date_updated=at(1),
        service_sid=SERVICE,
    )


def conversation(state: str) -> ConversationEvent:
    return ConversationEvent(action="state_updated", conversation_sid=OTHER_CONV, state=state, date_updated=at(9))


async def outcome(ledger: DeliveryLedger, events: Sequence[LedgerEvent]) -> dict[str, Any]:
    """Everything observable after applying `events` in order: what apply said, and what the ledger holds."""
    results = []
    for event in events:
        result = await ledger.apply(event)
        change = result.change
        results.append(
            (
                result.duplicate,
                result.recorded,
                None if change is None else (change.seq, change.kind, change.conversation_sid, change.payload),
            )
        )
    receipt_sids = [R1, R2, R3]
    return {
        "results": results,
        "receipts": [await ledger.receipt(sid) for sid in receipt_sids],
        "by_message": [await ledger.receipts_for_message(sid) for sid in (MSG, MSG2)],
        "histories": await ledger.history_many(receipt_sids),
        "changes": [await ledger.changes_after(conv, 0) for conv in (CONV, OTHER_CONV)],
        "last_seq": await ledger.last_seq(),
        "horizons": [await ledger.read_horizon(p) for p in (P1, P2)],
    }


Observe = Callable[[DeliveryLedger, Sequence[LedgerEvent]], Awaitable[dict[str, Any]]]


async def run_everywhere(
    engines: dict[str, Callable[[], str]], events: Sequence[LedgerEvent], observe: Observe | None = None
) -> dict[str, Any]:
    """Apply `events` to a fresh ledger of every engine (through `observe`, by default `outcome`); assert they all
    agree; return the reference outcome."""
    outcomes = {}
    for name, url in engines.items():
        ledger = create_ledger(url())
        await ledger.start()
        try:
            outcomes[name] = await (observe or outcome)(ledger, events)
        finally:
            await ledger.close()
    reference_name, reference = next(iter(outcomes.items()))
    for name, other in outcomes.items():
        for part in reference:
            assert other[part] == reference[part], f"{name} disagrees with {reference_name} on {part}"
    return reference


STATUS_PATH = [
    delivery(R1, S.SENT, 1, participant=P1, channel_message="SM1"),
    delivery(R1, S.DELIVERED, 2, participant=P1, channel_message="SM1"),
    delivery(R1, S.READ, 3, participant=P1, channel_message="SM1"),
    delivery(R2, S.SENT, 1, participant=P2),
    delivery(R2, S.UNDELIVERED, 4, participant=P2, error_code=30003),
]


async def test_in_order_statuses(engines) -> None:
    reference = await run_everywhere(engines, STATUS_PATH)
    assert [r.status for r in reference["receipts"][:2]] == [S.READ, S.UNDELIVERED]
    assert reference["last_seq"] == 5


async def test_duplicates_change_nothing_and_repeat_the_original_change(engines) -> None:
    events = [e for event in STATUS_PATH for e in (event, event)] + [STATUS_PATH[0]]
    reference = await run_everywhere(engines, events)
    firsts, repeats = reference["results"][0::2][:5], reference["results"][1::2][:5]
    assert all(not duplicate for duplicate, _, _ in firsts)
    assert all(duplicate for duplicate, _, _ in repeats)
    assert [change for _, _, change in firsts] == [change for _, _, change in repeats]


@pytest.mark.parametrize("seed", range(6))
async def test_shuffled_statuses_with_stale_and_duplicate_events(engines, seed: int) -> None:
    events = [
        *STATUS_PATH,
        delivery(R1, S.SENT, 1, participant=P1, channel_message="SM1"),  # duplicate
        delivery(R3, S.FAILED, 7, message=MSG2, error_code=30007),
        delivery(R3, S.UNDELIVERED, 7, message=MSG2, error_code=30005),  # same rank and time as failed
        delivery(R3, S.SENT, 6, message=MSG2, participant=P2, channel_message="SM3"),  # stale, brings identity
    ]
    random.Random(seed).shuffle(events)
    reference = await run_everywhere(engines, events)
    r1, r2, r3 = reference["receipts"]
    assert (r1.status, r2.status, r3.status) == (S.READ, S.UNDELIVERED, S.UNDELIVERED)
    assert (r3.participant_sid, r3.channel_message_sid) == (P2, "SM3")  # kept from the stale event


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_stale_events_keep_identity_fields_in_any_order(engines, order: tuple[int, ...]) -> None:
    events = [
        delivery(R1, S.READ, 3),  # no identity fields
        delivery(R1, S.SENT, 1, participant=P1),  # stale: brings the participant
        delivery(R1, S.DELIVERED, 2, channel_message="SM9", service=None),  # stale: brings the channel SID
    ]
    reference = await run_everywhere(engines, [events[i] for i in order])
    receipt = reference["receipts"][0]
    assert (receipt.status, receipt.participant_sid, receipt.channel_message_sid) == (S.READ, P1, "SM9")


async def test_read_horizons_move_forward_only(engines) -> None:
    events = [
        horizon(P1, 2),
        horizon(P1, 5),
        horizon(P1, 3),  # stale
        horizon(P1, 5),  # duplicate
        horizon(P1, None),  # no index: nothing to record
        horizon(P1, None),
        horizon(P2, 0),
    ]
    reference = await run_everywhere(engines, events)
    assert reference["horizons"] == [5, 0]
    assert [r[2] is not None for r in reference["results"]] == [True, True, False, True, False, False, True]
    assert [r[0] for r in reference["results"]] == [False, False, False, True, False, True, False]


async def test_message_and_conversation_events(engines) -> None:
    events = [
        message("added"),
        message("added"),  # duplicate
        message("updated", body="edited"),
        message("added", MSG2, media=[]),
        message("updated", MSG2, media=[{"sid": "ME" + "0" * 32, "content_type": "image/png", "size": 3}]),
        message("removed"),
        conversation("inactive"),
        conversation("inactive"),  # duplicate
        conversation("closed"),
        *STATUS_PATH[:2],
    ]
    reference = await run_everywhere(engines, events)
    assert [len(changes) for changes in reference["changes"]] == [7, 2]


# Larger sequences: two services, three channels, error codes; compared on every query the ledger answers.

SINCE, UNTIL = scenario.T0 - timedelta(days=1), scenario.T0 + timedelta(days=5)
REPORT_GROUPINGS = [
    [],
    [ReportDimension.STATUS],
    [ReportDimension.STATUS, ReportDimension.ERROR_CODE, ReportDimension.CHANNEL],
    [ReportDimension.DAY, ReportDimension.STATUS],
    [ReportDimension.HOUR, ReportDimension.CHANNEL],
]


async def queries(ledger: DeliveryLedger, events: Sequence[LedgerEvent]) -> dict[str, Any]:
    receipts = sorted({e.receipt_sid for e in events if isinstance(e, DeliveryEvent)})
    conversations = sorted({e.conversation_sid for e in events})
    services = (scenario.SERVICE_A, scenario.SERVICE_B)
    odd_since = SINCE + timedelta(minutes=37, seconds=11)  # ragged hours at both ends
    return {
        "receipts": [await ledger.receipt(sid) for sid in receipts],
        "histories": await ledger.history_many(receipts),
        "changes": [await ledger.changes_after(conv, 0, limit=100_000) for conv in conversations],
        "service": [await ledger.service_changes_after(s, 0, limit=100_000) for s in services],
        "service_failed": [
            await ledger.service_changes_after(s, 3, statuses=[S.FAILED, S.UNDELIVERED], limit=100_000)
            for s in services
        ],
        "reports": [
            await ledger.delivery_report(s, since, UNTIL - timedelta(minutes=3), g)
            for s in services
            for since in (SINCE, odd_since)
            for g in REPORT_GROUPINGS
        ],
        "failed": [await ledger.failed_deliveries(s, SINCE, UNTIL, first=1000) for s in services],
        "failed_retryable": [
            await ledger.failed_deliveries(s, SINCE, UNTIL, retryable=r, first=1000)
            for s in services
            for r in (True, False)
        ],
        "last_seq": await ledger.last_seq(),
    }


def in_batches_of(batch: int) -> Observe:
    async def observe(ledger: DeliveryLedger, events: Sequence[LedgerEvent]) -> dict[str, Any]:
        for start in range(0, len(events), batch):
            await ledger.apply_many(events[start : start + batch])
        return await queries(ledger, events)

    return observe


@pytest.mark.parametrize("seed", range(2))
async def test_storms_agree_on_every_query_whatever_the_batching(engines, seed: int) -> None:
    events = scenario.duplicated_and_shuffled(scenario.storm(seed, receipts=40), seed)
    one_by_one = await run_everywhere(engines, events, in_batches_of(1))
    batched = await run_everywhere(engines, events, in_batches_of(37))
    assert batched == one_by_one  # a batch is exactly its events applied one by one
    assert sum(len(r) for r in one_by_one["reports"]) > 20 and one_by_one["failed"][0].items
