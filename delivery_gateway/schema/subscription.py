"""GraphQL subscriptions over the delivery ledger: delivery updates, read horizons, message events; resumable.

Never serves an event with an earlier event's loaders, never skips or repeats an event across a resume
(subscribe live first, replay from the ledger, dedupe by sequence), and never buffers without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from delivery_gateway.context import RequestContext
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import MessageRecord
from delivery_gateway.ledger import ChangeKind, HistoryEntry, LedgerChange
from delivery_gateway.pubsub import GAP, SlowConsumer, conversation_channel
from delivery_gateway.resolvers.access import authorize_conversation, effective_service
from delivery_gateway.resolvers.errors import BadUserInput, GatewayError
from delivery_gateway.schema.enums import DeliveryStatus
from delivery_gateway.schema.types import (
    DeliveryReceipt,
    Message,
    Participant,
    message_from_record,
    participant_from_record,
    receipt_from_record,
)

REPLAY_BATCH = 500
SEEN_WINDOW = 4096  # live sequences remembered for dedupe (publish order may differ from sequence order)


class SlowConsumerError(GatewayError):
    code = "SLOW_CONSUMER"


class Unavailable(GatewayError):
    code = "SERVICE_UNAVAILABLE"


class CursorExpired(GatewayError):
    code = "CURSOR_EXPIRED"

    def __init__(self, after: int) -> None:
        super().__init__(
            f"after: cursor {after} is older than the ledger's retention; events after it were pruned. "
            "Re-query the current state, then subscribe again without `after`."
        )


# History of a receipt (a field of DeliveryReceipt, resolved from the ledger)


@strawberry.type(description="One status a delivery receipt took, as the gateway's ledger recorded it.")
class ReceiptStatusChange:
    status: DeliveryStatus
    error_code: int | None
    at: datetime | None = strawberry.field(description="When Twilio says the receipt reached this status.")
    source: str = strawberry.field(description="Who reported it (webhook source: api, sdk...).")
    changed_status: bool = strawberry.field(
        description="False for a late, older status: kept in history without changing the receipt."
    )
    cursor: str | None = strawberry.field(description="The ledger cursor of the change, when it changed status.")


def _history_change(entry: HistoryEntry) -> ReceiptStatusChange:
    return ReceiptStatusChange(
        status=entry.status,
        error_code=entry.error_code,
        at=datetime.fromisoformat(entry.at) if entry.at else None,
        source=entry.source,
        changed_status=entry.recorded_seq > 0,
        cursor=str(entry.recorded_seq) if entry.recorded_seq else None,
    )


async def receipt_history(info: Info, receipt_sid: str) -> list[ReceiptStatusChange] | None:
    """Every status change of a receipt, oldest first; null when the gateway runs without a ledger.

    Batched per request (and per subscription event) through a non-caching DataLoader in `context.extra`.
    """
    context: RequestContext = info.context
    ledger = context.services.ledger
    if ledger is None:
        return None
    loader = context.extra.get("receipt_history")
    if loader is None:

        async def load(keys: list[str]) -> list[list[HistoryEntry]]:
            found = await ledger.history_many(keys)
            return [found.get(k, []) for k in keys]

        loader = context.extra["receipt_history"] = DataLoader(load, cache=False)
    return [_history_change(e) for e in await loader.load(receipt_sid)]


# Event types


@strawberry.type(description="A receipt changed status. Duplicate and stale webhooks never produce one.")
class DeliveryUpdate:
    cursor: str = strawberry.field(description="Pass as `after` when resubscribing to resume after this event.")
    receipt: DeliveryReceipt
    previous_status: DeliveryStatus | None = strawberry.field(description="Null for a receipt's first status.")
    message_sid: str
    scope: strawberry.Private[str | None]
    conversation_sid: strawberry.Private[str]

    @strawberry.field(description="The message, with its recomputed delivery summary and ticks.")
    async def message(self, info: Info) -> Message | None:
        record = await info.context.loaders.message.load((self.scope, self.conversation_sid, self.message_sid))
        return message_from_record(record, self.scope)


@strawberry.type(description="A participant's read horizon moved forward.")
class ReadHorizonUpdate:
    cursor: str
    conversation_sid: str
    participant_sid: str
    identity: str | None
    last_read_message_index: int
    previous_index: int | None
    scope: strawberry.Private[str | None]

    @strawberry.field(description="The participant, as now cached (read horizon included).")
    async def participant(self, info: Info) -> Participant | None:
        records = await info.context.loaders.participants.load((self.scope, self.conversation_sid))
        for record in records:
            if record.sid == self.participant_sid:
                return participant_from_record(record, self.scope)
        return None


@strawberry.enum(description="What happened to a message.")
class MessageAction(Enum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@strawberry.type(description="A message was added, updated or removed.")
class MessageEvent:
    cursor: str
    action: MessageAction
    conversation_sid: str
    message_sid: str
    payload: strawberry.Private[dict[str, Any]]
    scope: strawberry.Private[str | None]

    @strawberry.field(description="The message as the webhook described it; null once removed.")
    def message(self) -> Message | None:
        if self.action is MessageAction.REMOVED:
            return None
        p = self.payload
        record = MessageRecord.from_dict(
            {
                "sid": p["message_sid"],
                "conversation_sid": p["conversation_sid"],
                "index": p.get("index") or 0,
                "account_sid": p.get("account_sid"),
                "chat_service_sid": p.get("service_sid"),
                "author": p.get("author"),
                "body": p.get("body"),
                "media": p.get("media") or None,
                "attributes": p.get("attributes"),
                "participant_sid": p.get("participant_sid"),
                "date_created": p.get("date_created"),
                "date_updated": p.get("date_updated"),
            }
        )
        return message_from_record(record, self.scope)


# The change stream: live first, then replay, then dedupe


def parse_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        value = int(after)
    except ValueError:
        raise BadUserInput("after: not a cursor of this API (use `cursor` of a received event)") from None
    if value < 0:
        raise BadUserInput("after: not a cursor of this API (use `cursor` of a received event)")
    return value


async def _check_cursor(ledger: Any, after: int) -> None:
    """A cursor below the ledger's pruning watermark can no longer be resumed without missing events."""
    pruned_through = getattr(ledger, "pruned_through", None)
    if pruned_through is not None and after < await pruned_through():
        raise CursorExpired(after)


async def ledger_changes(
    services: Any, conversation_sid: str, after: int | None, kinds: Iterable[ChangeKind]
) -> AsyncIterator[LedgerChange]:
    """Changes of the conversation after `after` (from the ledger), then live ones; each exactly once."""
    if services.pubsub is None or services.ledger is None:
        raise Unavailable("live updates are not configured on this gateway (no ledger or pub/sub)")
    wanted = set(kinds)
    async with services.pubsub.subscribe(conversation_channel(conversation_sid)) as live:
        replayed_up_to = 0
        if after is not None:  # the live subscription is already buffering: nothing falls in between
            await _check_cursor(services.ledger, after)
            cursor = after
            while True:
                batch = await services.ledger.changes_after(conversation_sid, cursor, limit=REPLAY_BATCH)
                for change in batch:
                    cursor = change.seq
                    if change.kind in wanted:
                        yield change
                if len(batch) < REPLAY_BATCH:
                    break
            replayed_up_to = cursor
            await _check_cursor(services.ledger, after)  # pruned while replaying: the replay may have gaps
        seen: set[int] = set()
        order: deque[int] = deque()
        # High-water mark for catching up after a GAP: never earlier than this subscription's start.
        high = replayed_up_to if after is not None else await services.ledger.last_seq()

        def fresh(change: LedgerChange) -> bool:
            nonlocal high
            # Sequence order is commit order, so anything <= the replay's end was in the replay.
            if change.seq <= replayed_up_to or change.seq in seen:
                return False
            seen.add(change.seq)
            order.append(change.seq)
            if len(order) > SEEN_WINDOW:
                seen.discard(order.popleft())
            high = max(high, change.seq)
            return change.kind in wanted

        try:
            async for text in live:
                if text == GAP:  # the broker may have lost messages: catch up from the ledger
                    catch_up = await services.ledger.changes_after(conversation_sid, high, limit=SEEN_WINDOW)
                    for change in catch_up:
                        if fresh(change):
                            yield change
                    continue
                change = LedgerChange.from_json(text)
                if fresh(change):
                    yield change
        except SlowConsumer as exc:
            raise SlowConsumerError(str(exc)) from exc


def _begin_event(info: Info) -> None:
    """Fresh loaders for this event: a WebSocket's context lives for the whole connection."""
    context: RequestContext = info.context
    context.refresh_loaders()
    context.extra.pop("receipt_history", None)


async def _follow(
    info: Info, conversation_sid: str, service_sid: str | None, after: str | None, kind: ChangeKind
) -> AsyncGenerator[tuple[LedgerChange, str | None], None]:
    """The conversation's ledger changes of one kind, after `after`, each with the caller's service scope.

    Authorizes once, before anything is read; counts the subscription while it is open; gives every event fresh
    loaders (a WebSocket's context outlives events, and a loader kept across them would serve stale data).
    """
    cursor = parse_cursor(after)
    scope = effective_service(info.context, service_sid)
    await authorize_conversation(info.context, scope, conversation_sid)
    metrics = info.context.services.metrics
    if metrics is not None:
        metrics.subscriptions_active.inc()
    try:
        async for change in ledger_changes(info.context.services, conversation_sid, cursor, [kind]):
            _begin_event(info)
            yield change, scope
    finally:
        if metrics is not None:
            metrics.subscriptions_active.dec()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each receipt status change of the conversation (optionally one message). Resume after a "
        "reconnect with `after` = the last cursor received: missed events are replayed, none twice."
    )
    async def delivery_updates(
        self,
        info: Info,
        conversation_sid: str,
        message_sid: str | None = None,
        service_sid: str | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        if message_sid is not None:
            sids.require_sid("messageSid", message_sid, sids.MESSAGE)
        async for change, scope in _follow(info, conversation_sid, service_sid, after, ChangeKind.DELIVERY):
            receipt = change.receipt
            if receipt is None or (message_sid is not None and receipt.message_sid != message_sid):
                continue
            yield DeliveryUpdate(
                cursor=change.cursor,
                receipt=receipt_from_record(receipt, scope),
                previous_status=change.previous_status,
                message_sid=receipt.message_sid,
                scope=scope,
                conversation_sid=conversation_sid,
            )

    @strawberry.subscription(description="Read horizon moves of the conversation's participants (resumable).")
    async def read_horizon_updates(
        self, info: Info, conversation_sid: str, service_sid: str | None = None, after: str | None = None
    ) -> AsyncGenerator[ReadHorizonUpdate, None]:
        async for change, scope in _follow(info, conversation_sid, service_sid, after, ChangeKind.READ_HORIZON):
            p = change.payload
            yield ReadHorizonUpdate(
                cursor=change.cursor,
                conversation_sid=conversation_sid,
                participant_sid=p["participant_sid"],
                identity=p.get("identity"),
                last_read_message_index=p["last_read_message_index"],
                previous_index=p.get("previous_index"),
                scope=scope,
            )

    @strawberry.subscription(description="Messages added, updated or removed in the conversation (resumable).")
    async def message_events(
        self, info: Info, conversation_sid: str, service_sid: str | None = None, after: str | None = None
    ) -> AsyncGenerator[MessageEvent, None]:
        async for change, scope in _follow(info, conversation_sid, service_sid, after, ChangeKind.MESSAGE):
            p = change.payload
            yield MessageEvent(
                cursor=change.cursor,
                action=MessageAction(p["action"]),
                conversation_sid=conversation_sid,
                message_sid=p["message_sid"],
                payload=p,
                scope=scope,
            )


__all__ = [
    "CursorExpired",
    "DeliveryUpdate",
    "MessageEvent",
    "ReadHorizonUpdate",
    "ReceiptStatusChange",
    "SlowConsumerError",
    "Subscription",
    "receipt_history",
]
