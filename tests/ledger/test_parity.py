"""Ledger backend parity: the same event sequences (duplicates, shuffles, stale events) through every backend
`create_ledger(url)` builds, compared with each other: apply results, receipts, histories, change logs.

Add an engine by adding its URL factory to `ENGINES`. Redis takes part whenever it answers (always in CI,
where DELIVERY_GATEWAY_REQUIRE_REDIS is set); the others need nothing.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.ledger import DeliveryLedger, create_ledger
from delivery_gateway.ledger.events import (
    ConversationEvent,
    DeliveryEvent,
    LedgerEvent,
    MessageEvent,
    ReadHorizonEvent,
)
from tests.redis_support import RedisTarget, redis_available, require_redis

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
    redis: RedisTarget | None
    count: int = 0

    def fresh(self) -> int:
        self.count += 1
        return self.count


def _sqlite(ctx: EngineContext) -> str:
    return f"sqlite:///{ctx.tmp_path / f'parity-{ctx.fresh()}.sqlite3'}"


def _redis(ctx: EngineContext) -> str:
    assert ctx.redis is not None
    return f"{ctx.redis.base_url}?prefix={ctx.redis.prefix}{ctx.fresh()}:"


# name -> URL of a fresh, empty ledger of that engine. The first one is the reference the others must equal.
ENGINES: dict[str, Callable[[EngineContext], str]] = {
    "memory": lambda ctx: "memory://",
    "sqlite": _sqlite,
    "redis": _redis,
}


@pytest.fixture
def engines(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Callable[[], str]]:
    """Every engine that can run here, as factories of fresh ledger URLs."""
    redis_target = None
    if redis_available():
        redis_target = request.getfixturevalue("redis_target")
    else:
        require_redis()  # fails when Redis is required (CI); otherwise Redis sits this one out
    ctx = EngineContext(tmp_path, redis_target)
    available = {name: factory for name, factory in ENGINES.items() if name != "redis" or redis_target is not None}
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


async def run_everywhere(engines: dict[str, Callable[[], str]], events: Sequence[LedgerEvent]) -> dict[str, Any]:
    """Apply `events` to a fresh ledger of every engine; assert they all agree; return the reference outcome."""
    outcomes = {}
    for name, url in engines.items():
        ledger = create_ledger(url())
        await ledger.start()
        try:
            outcomes[name] = await outcome(ledger, events)
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
