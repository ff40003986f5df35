"""The one access rule of the API: which service a request reads through, and whether its caller may see a
conversation (allowed, or FORBIDDEN) — every conversation-scoped resolution goes through `authorize_conversation`.

Never lets a participant caller learn anything about a conversation they are not in, existence included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from delivery_gateway.graphql.errors import Forbidden
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.callers import CallerKind
from delivery_gateway.upstream.errors import UpstreamNotFound

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


def validate_service_and_conversation(service_sid: str | None, conversation_sid: str) -> None:
    """BAD_USER_INPUT for malformed SIDs, before anything reaches upstream."""
    if service_sid is not None:
        sids.require_sid("serviceSid", service_sid, sids.SERVICE)
    sids.require_sid("conversationSid", conversation_sid, sids.CONVERSATION)


def service_scope(context: RequestContext, service_sid: str | None) -> str | None:
    """The Conversation Service a request reads through (None: the account's default service).

    Participant callers default to their token's service.
    """
    if service_sid is None and not context.caller.full_access:
        return context.caller.service_sid
    return service_sid


async def authorize_conversation(context: RequestContext, service_sid: str | None, conversation_sid: str) -> None:
    """Full-access callers pass; participant callers only for conversations listing their identity.

    Costs participant callers one Participants list per conversation (shared with every participant lookup
    of the request through the participants loader); a missing conversation is FORBIDDEN for them, never
    NOT_FOUND.
    """
    validate_service_and_conversation(service_sid, conversation_sid)
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


async def may_see_conversation(context: RequestContext, service_sid: str | None, conversation_sid: str) -> bool:
    """`authorize_conversation` as a yes/no, for filtering lists."""
    try:
        await authorize_conversation(context, service_sid, conversation_sid)
    except Forbidden:
        return False
    return True
