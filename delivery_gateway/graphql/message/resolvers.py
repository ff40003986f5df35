"""Message field logic: one message (behind the access rule), resend links, and resending a failed message.

Never resends a message that is not failed/undelivered per its delivery summary (FAILED_PRECONDITION), nor one
whose every failure a resend cannot fix (unless an API-key caller forces it), nor another author's message for a
participant caller, nor beyond the resend allowances (RATE_LIMITED); and never loses the link between the two:
attributes `resendOf` on the new one, old -> new in the ledger.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from delivery_gateway.cache import keys
from delivery_gateway.cache.rate_limits import Limit, RateLimitUnavailable
from delivery_gateway.delivery.error_codes import resend_may_help
from delivery_gateway.delivery.statuses import is_terminal
from delivery_gateway.delivery.summary import current_summary as summary_rule
from delivery_gateway.delivery.summary import shows_failure
from delivery_gateway.graphql.access import authorize
from delivery_gateway.graphql.errors import FailedPrecondition, Forbidden, RateLimited, RateLimiterUnavailable
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.callers import Caller
from delivery_gateway.kernel.records import MessageRecord, ReceiptRecord

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


async def message(
    context: RequestContext,
    service_sid: str | None,
    conversation_sid: str,
    message_sid: str,
    *,
    arguments: tuple[str, str, str] = ("serviceSid", "conversationSid", "sid"),
) -> tuple[str | None, MessageRecord]:
    """(the service scope it was read through, the message), behind the access rule; `arguments` name the
    service, conversation and message SIDs as the caller gave them (for BAD_USER_INPUT)."""
    sids.require_sid(arguments[2], message_sid, sids.MESSAGE)
    scope = await authorize(context, service_sid, conversation_sid, arguments=arguments[:2])
    return scope, await context.loaders.message.load((scope, conversation_sid, message_sid))


async def resent_as(context: RequestContext, service_scope: str | None, original: MessageRecord) -> list[MessageRecord]:
    """The messages `original` was resent as (ledger), oldest first, in its conversation (behind the access rule)."""
    service_scope = await authorize(context, service_scope, original.conversation_sid)
    new_sids = await context.services.ledger.resent_as(original.sid)
    found = await context.loaders.message.load_many(
        [(service_scope, original.conversation_sid, sid) for sid in new_sids]
    )
    return [record for record in found if isinstance(record, MessageRecord)]


async def resend_of(context: RequestContext, service_scope: str | None, resent: MessageRecord) -> MessageRecord | None:
    """The message `resent` resends, in its conversation (behind the access rule): from the ledger, else from its
    `resendOf` attribute."""
    service_scope = await authorize(context, service_scope, resent.conversation_sid)
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
    """The delivery summary by the one summary rule, with the receipts the ledger holds."""
    ledger = context.services.ledger
    receipts = await ledger.receipts_for_message(record.sid)
    total = (record.delivery or {}).get("total") or 0
    complete = bool(receipts) and len(receipts) >= total  # a partial list cannot change the summary
    histories = await ledger.history_many([r.sid for r in receipts]) if complete else {}
    return summary_rule(record.delivery, receipts, histories)


async def failure_codes(context: RequestContext, record: MessageRecord, service_scope: str | None) -> list[int | None]:
    """The error codes of the message's failed/undelivered receipts: the ledger's when it holds every receipt
    Twilio counted, else a fresh Receipts list (a resend is never decided on a cached receipt)."""
    receipts: list[ReceiptRecord] = await context.services.ledger.receipts_for_message(record.sid)
    if len(receipts) < ((record.delivery or {}).get("total") or 0) or not receipts:
        receipts = await context.services.upstream.list_receipts(
            record.conversation_sid, record.sid, service_sid=service_scope
        )
    return [r.error_code for r in receipts if is_terminal(r.status)]


async def _count_resend(context: RequestContext, caller: Caller, message_sid: str) -> None:
    settings = context.settings
    per_message = Limit("resend-message", settings.resend_limit_per_message, settings.resend_window)
    per_caller = Limit("resend-caller", settings.resend_limit_per_caller, settings.resend_window)
    subject = f"{caller.kind}:{caller.service_sid or '-'}:{caller.identity or '-'}"
    try:
        wait = await context.services.limits.hit([(per_message, message_sid), (per_caller, subject)])
    except RateLimitUnavailable:
        raise RateLimiterUnavailable("resends are paused: the rate-limit store cannot be reached") from None
    if wait is not None:
        raise RateLimited(
            f"too many resends (at most {per_message.limit} per message and {per_caller.limit} per caller every "
            f"{settings.resend_window:g} s); retry in {wait} s",
            retry_after=wait,
        )


async def resend_message(
    context: RequestContext,
    service_sid: str | None,
    conversation_sid: str,
    message_sid: str,
    *,
    force: bool = False,
) -> tuple[str | None, MessageRecord]:
    """Send a failed/undelivered message again as a new message, linked both ways; returns (the service scope,
    the new message).

    Participant callers may resend only messages they authored, and never with `force` (API-key callers only).
    """
    sids.require_sid("messageSid", message_sid, sids.MESSAGE)
    scope = await authorize(context, service_sid, conversation_sid)
    caller = context.caller
    if force and not caller.full_access:
        raise Forbidden("force is for API-key callers; an Access Token cannot force a resend.")
    upstream, ledger = context.services.upstream, context.services.ledger
    # Fresh from upstream: a resend must not be decided on a cached summary.
    original = await upstream.fetch_message(conversation_sid, message_sid, service_sid=scope)
    if not caller.full_access and original.author != caller.identity:
        raise Forbidden("An Access Token may resend only messages its identity authored.")
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
        codes = await failure_codes(context, original, scope)
        if not resend_may_help(codes):
            listed = ", ".join(str(code) for code in sorted({c for c in codes if c}))
            raise FailedPrecondition(
                f"message {message_sid} failed with errors a resend cannot fix ({listed}: see `error` on its "
                "receipts); pass force: true (API-key callers) to resend it anyway"
            )
    await _count_resend(context, caller, message_sid)
    media_sid = next((m.get("sid") for m in original.media or [] if m.get("sid")), None)
    created = await upstream.create_message(
        conversation_sid,
        service_sid=scope,
        author=original.author,
        body=original.body,
        media_sid=media_sid,
        attributes=resend_attributes(original.attributes, message_sid),
        webhook_enabled=True,  # onMessageAdded for the new message: subscribers see it as for any other
    )
    await ledger.record_resend(conversation_sid, message_sid, created.sid)
    await _orphan_message_pages(context, scope, conversation_sid, original.chat_service_sid)
    return scope, created


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
