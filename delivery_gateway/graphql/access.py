"""The one access rule of the API: which Conversation Service a request reads through, and whether its caller may
see a conversation there. Every path that names a conversation — root fields, `node(id:)`, nested links,
subscriptions, mutations — goes through `authorize`, which resolves the caller's effective service first; every
read across a service's conversations (the service stream, reports) goes through `authorize_service_wide`.

Never lets a participant caller learn anything about a conversation they are not in (existence included), and
never reads a participant caller's data through a service other than their Access Token's: identities are per
service in Twilio, so "alice" of one service is nobody in another. Participant callers never read across a
service's conversations at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from delivery_gateway.graphql.errors import FailedPrecondition, Forbidden, NotFound
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.callers import CallerKind
from delivery_gateway.upstream.errors import UpstreamError, UpstreamNotFound

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext

log = logging.getLogger("delivery_gateway.access")

SERVICE_ARGUMENT = "serviceSid"
CONVERSATION_ARGUMENT = "conversationSid"


async def default_service_sid(context: RequestContext) -> str | None:
    """The account's default Conversation Service (Twilio's Configuration resource, `default_chat_service_sid`),
    read through the configuration loader (cached across requests)."""
    configuration = await context.loaders.configuration.load(None)
    return configuration.default_chat_service_sid


async def effective_service(
    context: RequestContext, requested: str | None, *, argument: str = SERVICE_ARGUMENT
) -> str | None:
    """The Conversation Service this request reads through (None: the account's default scope).

    Full-access callers read the service they ask for. A participant caller reads only its Access Token's service
    (a token without one means the account's default service, resolved to its SID): asking for another service
    is FORBIDDEN, asking for none means theirs.
    """
    if requested is not None:
        sids.require_sid(argument, requested, sids.SERVICE)
    caller = context.caller
    if caller.full_access:
        return requested
    if caller.kind is not CallerKind.PARTICIPANT or not caller.identity:
        raise Forbidden()
    own = caller.service_sid or await default_service_sid(context)
    if own is None or (requested is not None and requested != own):
        raise Forbidden()
    allowed = context.settings.chat_service_sids
    if caller.service_sid is None and allowed and own not in allowed:
        # A token naming its service was checked when it was verified; the default service only now has a SID.
        raise Forbidden("Access Tokens for this Conversation Service are not accepted.")
    return own


async def authorize(
    context: RequestContext,
    service_sid: str | None,
    conversation_sid: str,
    *,
    arguments: tuple[str, str] = (SERVICE_ARGUMENT, CONVERSATION_ARGUMENT),
    must_exist: bool = False,
) -> str | None:
    """The access rule. Returns the service scope to read the conversation through.

    Validates the SIDs (BAD_USER_INPUT naming `arguments`, the names the caller used), resolves the effective
    service, then: full-access callers pass (with `must_exist`, a conversation Twilio says it does not have is
    NOT_FOUND; when Twilio cannot answer, the caller passes: a subscription fed by webhooks outlives an outage of
    the REST API); participant callers pass only for a conversation listing their identity in that service, and
    anything else, a missing conversation included, is FORBIDDEN. Costs participant callers one Participants list
    per conversation, shared with every participant lookup of the request through the participants loader.
    """
    service_argument, conversation_argument = arguments
    sids.require_sid(conversation_argument, conversation_sid, sids.CONVERSATION)
    scope = await effective_service(context, service_sid, argument=service_argument)
    caller = context.caller
    if caller.full_access:
        if must_exist:
            try:  # its participants: what a subscription's events read anyway, so usually a cache hit
                await context.loaders.participants.load((scope, conversation_sid))
            except UpstreamNotFound:
                raise NotFound(f"{conversation_argument}: no conversation {conversation_sid}") from None
            except UpstreamError as exc:
                log.info("existence of %s not checked (%s); going on", conversation_sid, exc.code)
        return scope
    try:
        participants = await context.loaders.participants.load((scope, conversation_sid))
    except UpstreamNotFound:
        raise Forbidden() from None
    if not any(p.identity == caller.identity for p in participants):
        raise Forbidden()
    return scope


async def may_see_conversation(context: RequestContext, service_scope: str | None, conversation_sid: str) -> bool:
    """`authorize` as a yes/no, for filtering lists."""
    try:
        await authorize(context, service_scope, conversation_sid)
    except Forbidden:
        return False
    return True


async def authorize_service_wide(context: RequestContext, service_sid: str | None) -> str:
    """The Conversation Service SID a service-wide read covers (the ledger's service stream and reports).

    Only full-access callers (API keys, demo): a participant caller sees conversations one at a time and is
    FORBIDDEN here, whatever it asks for. `service_sid` None means the account's default service, as for every
    other root field; the ledger records changes by service SID, so it is resolved (`default_service_sid`, one
    cached Configuration read). Malformed SIDs are BAD_USER_INPUT, an account without a default service
    FAILED_PRECONDITION.
    """
    if not context.caller.full_access:
        raise Forbidden("Service-wide reads (the service stream and delivery reports) need an API key.")
    if service_sid is not None:
        return sids.require_sid(SERVICE_ARGUMENT, service_sid, sids.SERVICE)
    default = await default_service_sid(context)
    if default is None:
        raise FailedPrecondition(f"{SERVICE_ARGUMENT}: the account names no default Conversation Service; pass one")
    return default
