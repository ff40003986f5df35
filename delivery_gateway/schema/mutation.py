"""The root Mutation: `resendMessage`, Twilio's missing retry for messages that failed or went undelivered.

Never resends a message that is not failed/undelivered per its delivery summary (FAILED_PRECONDITION), and
never loses the link between the two: attributes `resendOf` on the new one, old -> new in the ledger.
"""

from __future__ import annotations

import json
from typing import Any

import strawberry
from strawberry.types import Info

from delivery_gateway.context import RequestContext
from delivery_gateway.delivery.summary import shows_failure, summarize_receipts
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import MessageRecord
from delivery_gateway.resolvers.access import authorize_conversation, effective_service
from delivery_gateway.resolvers.errors import GatewayError
from delivery_gateway.schema.types import Message, message_from_record


class FailedPrecondition(GatewayError):
    code = "FAILED_PRECONDITION"


def resend_attributes(original: str | None, old_sid: str) -> str:
    """The original attributes plus `resendOf`; non-object attributes are kept under `original`."""
    try:
        value: Any = json.loads(original) if original else {}
    except ValueError:
        value = original
    if not isinstance(value, dict):
        value = {} if value in (None, "") else {"original": value}
    return json.dumps({**value, "resendOf": old_sid}, separators=(",", ":"))


async def _current_summary(context: RequestContext, record: MessageRecord) -> dict[str, Any] | None:
    """The delivery summary; recomputed from the ledger when it knows every receipt Twilio counted."""
    ledger = context.services.ledger
    summary = record.delivery
    if ledger is not None:
        receipts = await ledger.receipts_for_message(record.sid)
        total = (summary or {}).get("total") or 0
        if receipts and len(receipts) >= total:
            histories = await ledger.history_many([r.sid for r in receipts])
            summary = summarize_receipts(receipts, histories)
    return summary


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Send a failed or undelivered message again, as a new message (new SID) with the same "
        "body, media and attributes plus `resendOf`. Refused (FAILED_PRECONDITION) unless its delivery "
        "summary shows a failed or undelivered receipt, or when already resent (`force: true` resends again)."
    )
    async def resend_message(
        self,
        info: Info,
        conversation_sid: str,
        message_sid: str,
        service_sid: str | None = None,
        force: bool = False,
    ) -> Message:
        context: RequestContext = info.context
        sids.require_sid("messageSid", message_sid, sids.MESSAGE)
        scope = effective_service(context, service_sid)
        await authorize_conversation(context, scope, conversation_sid)
        upstream = context.services.upstream
        # Fresh from upstream: a resend must not be decided on a cached summary.
        original = await upstream.fetch_message(conversation_sid, message_sid, service_sid=scope)
        summary = await _current_summary(context, original)
        if not shows_failure(summary):
            raise FailedPrecondition(
                f"message {message_sid} is not failed or undelivered (delivery: {json.dumps(summary)}); "
                "only messages Twilio gave up on can be resent"
            )
        ledger = context.services.ledger
        if ledger is not None and not force:
            earlier = await ledger.resent_as(message_sid)
            if earlier:
                raise FailedPrecondition(
                    f"message {message_sid} was already resent as {', '.join(earlier)}; pass force: true to "
                    "resend it again"
                )
        media_sid = next((m.get("sid") for m in original.media or [] if m.get("sid")), None)
        created = await upstream.create_message(
            conversation_sid,
            service_sid=scope,
            author=original.author,
            body=original.body,
            media_sid=media_sid,
            attributes=resend_attributes(original.attributes, message_sid),
        )
        if ledger is not None:
            await ledger.record_resend(conversation_sid, message_sid, created.sid)
        await _orphan_message_pages(context, scope, conversation_sid, original.chat_service_sid)
        return message_from_record(created, scope)


async def _orphan_message_pages(
    context: RequestContext, scope: str | None, conversation_sid: str, service_sid: str | None
) -> None:
    """The new message must show in the next page read, before its onMessageAdded webhook arrives."""
    cache = context.services.cache
    if cache is None:
        return
    from delivery_gateway.cache import keys

    generation = set(keys.generation_keys(service_sid or scope, conversation_sid))
    generation.update(keys.generation_keys(scope, conversation_sid))
    await cache.bump(sorted(generation))


# Fields for Message (attach in schema/types.py; see the report)


async def resent_as(info: Info, message: Message) -> list[Message]:
    """The messages this one was resent as (ledger), oldest first."""
    context: RequestContext = info.context
    ledger = context.services.ledger
    if ledger is None:
        return []
    sids_ = await ledger.resent_as(message.sid)
    records = await context.loaders.message.load_many([(message.scope, message.conversation_sid, sid) for sid in sids_])
    return [message_from_record(r, message.scope) for r in records if isinstance(r, MessageRecord)]


async def resend_of(info: Info, message: Message) -> Message | None:
    """The message this one resends: from the ledger, else from its `resendOf` attribute."""
    context: RequestContext = info.context
    old_sid = None
    if context.services.ledger is not None:
        old_sid = await context.services.ledger.resend_of(message.sid)
    if old_sid is None and isinstance(message.attributes, dict):
        candidate = message.attributes.get("resendOf")
        old_sid = candidate if sids.is_sid(candidate, sids.MESSAGE) else None
    if old_sid is None:
        return None
    record = await context.loaders.message.load((message.scope, message.conversation_sid, old_sid))
    return message_from_record(record, message.scope)
