"""Mutations of the message domain: `resendMessage`, Twilio's missing retry for failed or undelivered messages.

Declarative; the resend itself (checks, upstream call, ledger link, cache) lives in message/resolvers.py.
"""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from delivery_gateway.graphql.message import resolvers
from delivery_gateway.graphql.message.types import Message


@strawberry.type
class MessageMutation:
    @strawberry.mutation(
        description="Send a failed or undelivered message again, as a new message (new SID) with the same "
        "body, media and attributes plus `resendOf`. Refused (FAILED_PRECONDITION) unless its delivery "
        "summary shows a failed or undelivered receipt, when already resent, or when every failure has an error "
        "a resend cannot fix (`error.retryable` false); `force: true` (API-key callers only) resends anyway. "
        "Access Tokens may resend only messages their identity authored. Resends are rate-limited per message "
        "and per caller (RATE_LIMITED with `retryAfter` seconds)."
    )
    async def resend_message(
        self,
        info: Info,
        conversation_sid: str,
        message_sid: str,
        service_sid: str | None = None,
        force: bool = False,
    ) -> Message:
        scope, created = await resolvers.resend_message(
            info.context, service_sid, conversation_sid, message_sid, force=force
        )
        return Message.from_record(created, scope, info.context)
