"""Follows ledger changes (one conversation's, or a whole service's): subscribe live first, replay from the ledger,
then dedupe.

Never skips or repeats a change across a resume (the live subscription buffers while the ledger is replayed,
and sequence numbers drop what the replay already delivered), and never holds more than SEEN_WINDOW sequences.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterable

from delivery_gateway.kernel.errors import CodedError
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import ChangeKind, DeliveryLedger, LedgerChange
from delivery_gateway.pubsub import GAP, PubSub, conversation_channel, service_channel

REPLAY_BATCH = 500
SEEN_WINDOW = 4096  # live sequences remembered for dedupe (a change may be published again after a crash)

# The ledger's changes of one stream after a sequence number, at most `limit` of them, in sequence order.
Replay = Callable[[int, int], Awaitable[list[LedgerChange]]]


class CursorExpired(CodedError):
    """The cursor cannot be resumed: older than the ledger's retention (the changes after it were pruned), or
    newer than anything the ledger recorded (a cursor of another ledger, e.g. from before a move of the store)."""

    code = "CURSOR_EXPIRED"

    def __init__(self, after: int, *, unknown: bool = False) -> None:
        reason = (
            "is newer than any change this gateway's ledger recorded (a cursor of another ledger?)"
            if unknown
            else "is older than the ledger's retention; events after it were pruned"
        )
        super().__init__(
            f"after: cursor {after} {reason}. Re-query the current state, then subscribe again without `after`."
        )
        self.after = after


async def _check_cursor(ledger: DeliveryLedger, after: int) -> None:
    """A cursor below the ledger's pruning watermark can no longer be resumed without missing changes; one above
    its last sequence number was never handed out by it (replaying from there would skip every change up to it).
    Sequence numbers are published only once committed, so a cursor a client received is never above it."""
    if after < await ledger.pruned_through():
        raise CursorExpired(after)
    if after > await ledger.last_seq():
        raise CursorExpired(after, unknown=True)


def conversation_changes(
    ledger: DeliveryLedger,
    pubsub: PubSub,
    conversation_sid: str,
    after: int | None,
    kinds: Iterable[ChangeKind],
    on_live: Callable[[], None] | None = None,
) -> AsyncGenerator[LedgerChange, None]:
    """Changes of the conversation of the given kinds after sequence `after` (from the ledger), then live ones.
    `on_live` is called once the live subscription receives what is published (before any replay).

    Raises CursorExpired for a pruned cursor, and pub/sub's SlowConsumer when this follower falls behind.
    """
    wanted = set(kinds)

    async def replay(cursor: int, limit: int) -> list[LedgerChange]:
        return await ledger.changes_after(conversation_sid, cursor, limit=limit)

    channel = conversation_channel(conversation_sid)
    return _follow(ledger, pubsub, channel, replay, lambda c: c.kind in wanted, after, on_live)


def delivery_status_filter(statuses: Collection[DeliveryStatus] | None) -> Callable[[LedgerChange], bool]:
    """Delivery changes whose receipt moved to one of `statuses` (None: every delivery change) — the rule
    `DeliveryLedger.service_changes_after(statuses=...)` applies in SQL, for changes that arrive live."""
    wanted = None if statuses is None else {DeliveryStatus(s).value for s in statuses}

    def keep(change: LedgerChange) -> bool:
        if change.kind is not ChangeKind.DELIVERY:
            return False
        return wanted is None or (change.payload.get("receipt") or {}).get("status") in wanted

    return keep


def service_delivery_changes(
    ledger: DeliveryLedger,
    pubsub: PubSub,
    service_sid: str,
    after: int | None,
    statuses: Collection[DeliveryStatus] | None = None,
    on_live: Callable[[], None] | None = None,
) -> AsyncGenerator[LedgerChange, None]:
    """Delivery changes of every conversation of the Conversation Service `service_sid` after sequence `after`
    (from the ledger), then live ones from the service's channel; only those that moved a receipt to one of
    `statuses` when given (non-empty). Cursors are the same sequence numbers as a conversation's.

    Raises CursorExpired for a pruned cursor, and pub/sub's SlowConsumer when this follower falls behind (ValueError
    at once for an empty `statuses`).
    """
    if statuses is not None and not statuses:
        raise ValueError("statuses: give at least one status, or None for all")
    only = sorted(statuses) if statuses is not None else None

    async def replay(cursor: int, limit: int) -> list[LedgerChange]:
        return await ledger.service_changes_after(service_sid, cursor, statuses=only, limit=limit)

    return _follow(ledger, pubsub, service_channel(service_sid), replay, delivery_status_filter(only), after, on_live)


async def _follow(
    ledger: DeliveryLedger,
    pubsub: PubSub,
    channel: str,
    replay: Replay,
    wanted: Callable[[LedgerChange], bool],
    after: int | None,
    on_live: Callable[[], None] | None = None,
) -> AsyncGenerator[LedgerChange, None]:
    """The changes `replay` reads after `after`, then the live ones of `channel`, each once, in sequence order;
    only those `wanted` (replay may return others: they still advance the cursor)."""
    async with pubsub.subscribe(channel) as live:
        if on_live is not None:
            on_live()
        replayed_up_to = 0
        if after is not None:  # the live subscription is already buffering: nothing falls in between
            await _check_cursor(ledger, after)
            replayed_up_to = after
            async for change in _everything_after(replay, after):
                replayed_up_to = change.seq
                if wanted(change):
                    yield change
            await _check_cursor(ledger, after)  # pruned while replaying: the replay may have gaps
        seen: set[int] = set()
        order: deque[int] = deque()
        # High-water mark for catching up after a GAP: never earlier than this subscription's start.
        high = replayed_up_to if after is not None else await ledger.last_seq()

        def fresh(change: LedgerChange) -> bool:
            nonlocal high
            # Sequence order is commit order (and publish order), so anything <= the replay's end was in the replay.
            if change.seq <= replayed_up_to or change.seq in seen:
                return False
            seen.add(change.seq)
            order.append(change.seq)
            if len(order) > SEEN_WINDOW:
                seen.discard(order.popleft())
            high = max(high, change.seq)
            return wanted(change)

        async for text in live:
            if text == GAP:  # the broker may have lost messages: catch up from the ledger, all of it
                async for change in _everything_after(replay, high):
                    if fresh(change):
                        yield change
                continue
            change = LedgerChange.from_json(text)
            if fresh(change):
                yield change


async def _everything_after(replay: Replay, cursor: int) -> AsyncGenerator[LedgerChange, None]:
    """Every change `replay` reads after `cursor`, REPLAY_BATCH at a time, up to the last one committed."""
    while True:
        batch = await replay(cursor, REPLAY_BATCH)
        for change in batch:
            cursor = change.seq
            yield change
        if len(batch) < REPLAY_BATCH:
            return
