"""Follows one conversation's ledger changes: subscribe live first, replay from the ledger, then dedupe.

Never skips or repeats a change across a resume (the live subscription buffers while the ledger is replayed,
and sequence numbers drop what the replay already delivered), and never holds more than SEEN_WINDOW sequences.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable

from delivery_gateway.kernel.errors import CodedError
from delivery_gateway.ledger import ChangeKind, DeliveryLedger, LedgerChange
from delivery_gateway.pubsub import GAP, PubSub, conversation_channel

REPLAY_BATCH = 500
SEEN_WINDOW = 4096  # live sequences remembered for dedupe (a change may be published again after a crash)


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


async def conversation_changes(
    ledger: DeliveryLedger,
    pubsub: PubSub,
    conversation_sid: str,
    after: int | None,
    kinds: Iterable[ChangeKind],
) -> AsyncIterator[LedgerChange]:
    """Changes of the conversation of the given kinds after sequence `after` (from the ledger), then live ones.

    Raises CursorExpired for a pruned cursor, and pub/sub's SlowConsumer when this follower falls behind.
    """
    wanted = set(kinds)
    async with pubsub.subscribe(conversation_channel(conversation_sid)) as live:
        replayed_up_to = 0
        if after is not None:  # the live subscription is already buffering: nothing falls in between
            await _check_cursor(ledger, after)
            cursor = after
            while True:
                batch = await ledger.changes_after(conversation_sid, cursor, limit=REPLAY_BATCH)
                for change in batch:
                    cursor = change.seq
                    if change.kind in wanted:
                        yield change
                if len(batch) < REPLAY_BATCH:
                    break
            replayed_up_to = cursor
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
            return change.kind in wanted

        async for text in live:
            if text == GAP:  # the broker may have lost messages: catch up from the ledger
                for change in await ledger.changes_after(conversation_sid, high, limit=SEEN_WINDOW):
                    if fresh(change):
                        yield change
                continue
            change = LedgerChange.from_json(text)
            if fresh(change):
                yield change
