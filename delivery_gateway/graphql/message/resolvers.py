"""Message field logic: one message (behind the access gate), resend links, and resending a failed message.

Never resends a message that is not failed/undelivered per its delivery summary (FAILED_PRECONDITION), and
never loses the link between the two: attributes `resendOf` on the new one, old -> new in the ledger.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from delivery_gateway.cache import keys
from delivery_gateway.delivery.summary import shows_failure, summarize_receipts
from delivery_gateway.graphql.access import authorize_conversation
from delivery_gateway.graphql.errors import FailedPrecondition
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import MessageRecord

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


async def message(
    context: RequestContext, service_scope: str | None, conversation_sid: str, message_sid: str
) -> MessageRecord:
    sids.require_sid("sid", message_sid, sids.MESSAGE)
    await authorize_conversation(context, service_scope, conversation_sid)
    return await context.loaders.message.load((service_scope, conversation_sid, message_sid))


async def resent_as(context: RequestContext, service_scope: str | None, original: MessageRecord) -> list[MessageRecord]:
    """The messages `original` was resent as (ledger), oldest first."""
    new_sids = await context.services.ledger.resent_as(original.sid)
    found = await context.loaders.message.load_many(
        [(service_scope, original.conversation_sid, sid) for sid in new_sids]
    )
    return [record for record in found if isinstance(record, MessageRecord)]


async def resend_of(context: RequestContext, service_scope: str | None, resent: MessageRecord) -> MessageRecord | None:
    """The message `resent` resends: from the ledger, else from its `resendOf` attribute."""
    old_sid = await context.services.ledger.resend_of(resent.sid)
    if old_sid is None:
        attributes = _json_object(resent.attributes)
        candidate = attributes.get("resendOf")
        old_sid = candidate if sids.is_sid(candidate, sids.MESSAGE) else None
    if old_sid is None:
        return None
    return await context.loaders.message.load((service_scope, resent.conversation_sid, old_sid))


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def resend_attributes(original: str | None, old_sid: str) -> str:
    """The original attributes plus `resendOf`; non-object attributes are kept under `original`."""
    try:
        value: Any = json.loads(original) if original else {}
    except ValueError:
        value = original
    if not isinstance(value, dict):
        value = {} if value in (None, "") else {"original": value}
    return json.dumps({**value, "resendOf": old_sid}, separators=(",", ":"))


async def current_summary(context: RequestContext, record: MessageRecord) -> dict[str, Any] | None:
    """The delivery summary; recomputed from the ledger when it knows every receipt Twilio counted."""
    ledger = context.services.ledger
    summary = record.delivery
    receipts = await ledger.receipts_for_message(record.sid)
    total = (summary or {}).get("total") or 0
    if receipts and len(receipts) >= total:
        histories = await ledger.history_many([r.sid for r in receipts])
        summary = summarize_receipts(receipts, histories)
    return summary


async def resend_message(
    context: RequestContext,
    service_scope: str | None,
    conversation_sid: str,
    message_sid: str,
    *,
    force: bool = False,
) -> MessageRecord:
    """Send a failed/undelivered message again as a new message, linked both ways; returns the new message."""
    sids.require_sid("messageSid", message_sid, sids.MESSAGE)
    await authorize_conversation(context, service_scope, conversation_sid)
    upstream, ledger = context.services.upstream, context.services.ledger
    # Fresh from upstream: a resend must not be decided on a cached summary.
    original = await upstream.fetch_message(conversation_sid, message_sid, service_sid=service_scope)
    summary = await current_summary(context, original)
    if not shows_failure(summary):
        raise FailedPrecondition(
            f"message {message_sid} is not failed or undelivered (delivery: {json.dumps(summary)}); "
            "only messages Twilio gave up on can be resent"
        )
    if not force:
        earlier = await ledger.resent_as(message_sid)
        if earlier:
            raise FailedPrecondition(
                f"message {message_sid} was already resent as {', '.join(earlier)}; pass force: true to resend it again"
            )
    media_sid = next((m.get("sid") for m in original.media or [] if m.get("sid")), None)
    created = await upstream.create_message(
        conversation_sid,
        service_sid=service_scope,
        author=original.author,
        body=original.body,
        media_sid=media_sid,
        attributes=resend_attributes(original.attributes, message_sid),
    )
    await ledger.record_resend(conversation_sid, message_sid, created.sid)
    await _orphan_message_pages(context, service_scope, conversation_sid, original.chat_service_sid)
    return created


async def _orphan_message_pages(
    context: RequestContext, service_scope: str | None, conversation_sid: str, service_sid: str | None
) -> None:
    """The new message must show in the next page read, before its onMessageAdded webhook arrives."""
    cache = context.services.cache
    if cache is None:
        return
    generation = set(keys.generation_keys(service_sid or service_scope, conversation_sid))
    generation.update(keys.generation_keys(service_scope, conversation_sid))
    await cache.bump(sorted(generation))
