"""Root fields of the live domain: the subscriptions `deliveryUpdates`, `readHorizonUpdates`, `messageEvents`.

Declarative: each follows the conversation's change stream through live/resolvers.py and turns changes into
events; never skips or repeats an event across a resume (changes/ guarantees it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.delivery.types import DeliveryReceipt
from delivery_gateway.graphql.live.resolvers import follow
from delivery_gateway.graphql.live.types import DeliveryUpdate, MessageAction, MessageUpdate, ReadHorizonUpdate
from delivery_gateway.kernel import sids
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
        async for change, scope in follow(info.context, conversation_sid, service_sid, after, ChangeKind.DELIVERY):
            receipt = change.receipt
            if receipt is None or (message_sid is not None and receipt.message_sid != message_sid):
                continue
            yield DeliveryUpdate(
                cursor=change.cursor,
                receipt=DeliveryReceipt.from_record(receipt, scope),
                previous_status=change.previous_status,
                message_sid=receipt.message_sid,
                service_scope=scope,
                conversation_sid=conversation_sid,
            )

    @strawberry.subscription(description="Read horizon moves of the conversation's participants (resumable).")
    async def read_horizon_updates(
        self, info: Info, conversation_sid: str, service_sid: str | None = None, after: str | None = None
    ) -> AsyncGenerator[ReadHorizonUpdate, None]:
        async for change, scope in follow(info.context, conversation_sid, service_sid, after, ChangeKind.READ_HORIZON):
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
        async for change, scope in follow(info.context, conversation_sid, service_sid, after, ChangeKind.MESSAGE):
            p = change.payload
            yield MessageUpdate(
                cursor=change.cursor,
                action=MessageAction(p["action"]),
                conversation_sid=conversation_sid,
                message_sid=p["message_sid"],
                payload=p,
                service_scope=scope,
            )
