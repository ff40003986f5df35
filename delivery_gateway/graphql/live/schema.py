"""Root fields of the live domain: the subscriptions `deliveryUpdates`, `readHorizonUpdates`, `messageEvents` (one
conversation each) and `serviceDeliveryUpdates` (every conversation of a service).

Declarative: each follows a change stream through live/resolvers.py and turns changes into events; never skips or
repeats an event across a resume (changes/ guarantees it), and closes its stream (its pub/sub subscription) as soon
as the client's subscription ends.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.live.resolvers import follow, follow_service
from delivery_gateway.graphql.live.types import DeliveryUpdate, MessageAction, MessageUpdate, ReadHorizonUpdate
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger import ChangeKind


@strawberry.type
class LiveSubscription:
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
        changes = follow(info.context, conversation_sid, service_sid, after, ChangeKind.DELIVERY)
        async with aclosing(changes):
            async for change, scope in changes:
                update = DeliveryUpdate.from_change(change, scope, info.context)
                if update is not None and (message_sid is None or update.message_sid == message_sid):
                    yield update

    @strawberry.subscription(
        description="Each receipt status change of every conversation of a Conversation Service (the account's "
        "default service when `serviceSid` is left out), optionally only changes to one of `statuses`: what an "
        "alerting job or a CRM sync follows. API-key callers only (participant callers get FORBIDDEN and follow "
        "their conversations with `deliveryUpdates`). Cursors are those of `deliveryUpdates`: resume with `after` "
        "= the last cursor received, missed events are replayed, none twice; a cursor older than the ledger's "
        "retention is CURSOR_EXPIRED. Covers what reached the gateway (webhooks and reconciliation)."
    )
    async def service_delivery_updates(
        self,
        info: Info,
        service_sid: str | None = None,
        statuses: list[DeliveryStatus] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[DeliveryUpdate, None]:
        changes = follow_service(info.context, service_sid, statuses, after)
        async with aclosing(changes):
            async for change, scope in changes:
                update = DeliveryUpdate.from_change(change, scope, info.context)
                if update is not None:
                    yield update

    @strawberry.subscription(description="Read horizon moves of the conversation's participants (resumable).")
    async def read_horizon_updates(
        self, info: Info, conversation_sid: str, service_sid: str | None = None, after: str | None = None
    ) -> AsyncGenerator[ReadHorizonUpdate, None]:
        changes = follow(info.context, conversation_sid, service_sid, after, ChangeKind.READ_HORIZON)
        async with aclosing(changes):
            async for change, scope in changes:
                p = change.payload
                yield ReadHorizonUpdate(
                    cursor=change.cursor,
                    conversation_sid=conversation_sid,
                    participant_sid=p["participant_sid"],
                    identity=p.get("identity"),
                    last_read_message_index=p["last_read_message_index"],
                    previous_index=p.get("previous_index"),
                    service_scope=scope,
                )

    @strawberry.subscription(description="Messages added, updated or removed in the conversation (resumable).")
    async def message_events(
        self, info: Info, conversation_sid: str, service_sid: str | None = None, after: str | None = None
    ) -> AsyncGenerator[MessageUpdate, None]:
        changes = follow(info.context, conversation_sid, service_sid, after, ChangeKind.MESSAGE)
        async with aclosing(changes):
            async for change, scope in changes:
                p = change.payload
                yield MessageUpdate(
                    cursor=change.cursor,
                    action=MessageAction(p["action"]),
                    conversation_sid=conversation_sid,
                    message_sid=p["message_sid"],
                    payload=p,
                    service_scope=scope,
                )
