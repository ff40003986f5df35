"""The one gate every conversation-scoped resolution goes through (caller scope -> allowed or FORBIDDEN).

Never lets a participant caller learn anything about a conversation they are not in, existence included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery_gateway.kernel import sids
from delivery_gateway.kernel.callers import CallerKind
from delivery_gateway.resolvers.errors import Forbidden
from delivery_gateway.upstream.errors import UpstreamNotFound

if TYPE_CHECKING:
    from delivery_gateway.context import RequestContext


def validate_scope(service_sid: str | None, conversation_sid: str) -> None:
    """BAD_USER_INPUT for malformed SIDs, before anything reaches upstream."""
    if service_sid is not None:
        sids.require_sid("serviceSid", service_sid, sids.SERVICE)
    sids.require_sid("conversationSid", conversation_sid, sids.CONVERSATION)


def effective_service(context: RequestContext, service_sid: str | None) -> str | None:
    """The service a request means: participant callers default to their token's service."""
    if service_sid is None and not context.caller.full_access:
        return context.caller.service_sid
    return service_sid


async def authorize_conversation(context: RequestContext, service_sid: str | None, conversation_sid: str) -> None:
    """Full-access callers pass; participant callers only for conversations listing their identity.

    Costs participant callers one Participants list per conversation (shared with every participant lookup
    of the request through the participants loader); a missing conversation is FORBIDDEN for them, never
    NOT_FOUND.
    """
    validate_scope(service_sid, conversation_sid)
    caller = context.caller
    if caller.full_access:
        return
    if caller.kind is not CallerKind.PARTICIPANT or not caller.identity:
        raise Forbidden()
    if caller.service_sid and service_sid and service_sid != caller.service_sid:
        raise Forbidden()
    try:
        participants = await context.loaders.participants.load((service_sid, conversation_sid))
    except UpstreamNotFound:
        raise Forbidden() from None
    if not any(p.identity == caller.identity for p in participants):
        raise Forbidden()
