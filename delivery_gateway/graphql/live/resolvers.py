"""Subscription field logic: resume cursors, and following a conversation's (or a service's) change stream as one
caller.

Never reads anything before the caller is authorized for the conversation (or the service), and holds no
request-scoped state while a subscription waits: authorization reads through a context of its own, dropped once
done, and each event is resolved with its own (graphql/live/execution.py). The stream itself (replay, live,
dedupe) is changes/'s, not GraphQL's. Under a live hub (graphql/live/hub.py) the context's role says whose stream
it is: a joining subscriber is only authorized, the hub follows one stream for all, and a subscriber executing one
change alone gets that change (live/roles.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from delivery_gateway.changes import conversation_changes, service_delivery_changes
from delivery_gateway.graphql.access import authorize, authorize_service_wide
from delivery_gateway.graphql.errors import BadUserInput
from delivery_gateway.graphql.live.roles import Admission, HubSource, PinnedChange
from delivery_gateway.kernel.records import DeliveryStatus, MessageRecord
from delivery_gateway.ledger import ChangeKind, LedgerChange
from delivery_gateway.upstream.errors import UpstreamError

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext


def parse_cursor(after: str | None) -> int | None:
    """A resume cursor (`cursor` of a received event) as a ledger sequence; BAD_USER_INPUT for anything else."""
    if after is None:
        return None
    try:
        value = int(after)
    except ValueError:
        value = -1
    if value < 0:
        raise BadUserInput("after: not a cursor of this API (use `cursor` of a received event)", argument="after")
    return value


async def follow(
    context: RequestContext, conversation_sid: str, service_sid: str | None, after: str | None, kind: ChangeKind
) -> AsyncGenerator[tuple[LedgerChange, str | None], None]:
    """The conversation's changes of one kind after `after`, each with the request's service scope.

    Authorizes once, before anything is read (a conversation that does not exist is NOT_FOUND for full-access
    callers and FORBIDDEN for participant callers, rather than a stream that never says anything); counts the
    subscription while it is open.
    """
    cursor = parse_cursor(after)
    scope = await authorize(context.for_event(), service_sid, conversation_sid, must_exist=True)
    role = context.live
    if isinstance(role, Admission | PinnedChange):
        async for change in _by_role(role):
            yield change, scope
        return
    services = context.services
    on_live = role.listening.set if isinstance(role, HubSource) else None
    changes = conversation_changes(services.ledger, services.pubsub, conversation_sid, cursor, [kind], on_live)
    async with aclosing(_each_event(context, changes)) as events:
        async for change in events:
            yield change, scope


async def follow_service(
    context: RequestContext, service_sid: str | None, statuses: Collection[DeliveryStatus] | None, after: str | None
) -> AsyncGenerator[tuple[LedgerChange, str | None], None]:
    """The delivery changes of every conversation of a service after `after`, each with the request's service
    scope (None when the caller named no service: later reads go through the default scope, as for every root field).

    Authorizes first (API-key callers only; the default service resolved to its SID), then the same per-event
    rule as a conversation's stream.
    """
    cursor = parse_cursor(after)
    if statuses is not None and not statuses:
        raise BadUserInput(
            "statuses: give at least one status, or leave the argument out for every status", argument="statuses"
        )
    ledger_service = await authorize_service_wide(context.for_event(), service_sid)
    role = context.live
    if isinstance(role, Admission | PinnedChange):
        async for change in _by_role(role):
            yield change, service_sid
        return
    services = context.services
    on_live = role.listening.set if isinstance(role, HubSource) else None
    changes = service_delivery_changes(services.ledger, services.pubsub, ledger_service, cursor, statuses, on_live)
    async with aclosing(_each_event(context, changes)) as events:
        async for change in events:
            yield change, service_sid


async def _by_role(role: Admission | PinnedChange) -> AsyncGenerator[LedgerChange, None]:
    """An authorized subscriber's changes under a hub: none to a joining one (the hub sends its events), the
    one change it executes alone otherwise."""
    if isinstance(role, Admission):
        role.admitted = True
        return
    yield role.change


async def _each_event(
    context: RequestContext, changes: AsyncGenerator[LedgerChange, None]
) -> AsyncGenerator[LedgerChange, None]:
    """Counts the subscription while it is open (a hub counts its subscribers, not its stream); closes the stream
    (its pub/sub subscription) as soon as the subscription ends; tells a hub which change is being executed."""
    services = context.services
    role = context.live
    hub = role if isinstance(role, HubSource) else None
    if hub is None:
        services.metrics.subscriptions_active.inc()
    try:
        async with aclosing(changes):
            while True:
                if hub is not None:
                    hub.current = None  # an error raised while waiting belongs to the stream, not to a change
                try:
                    change = await anext(changes)
                except StopAsyncIteration:
                    return
                if hub is not None:
                    hub.current = change
                yield change
    finally:
        if hub is None:
            services.metrics.subscriptions_active.dec()


async def message_now(context: RequestContext, service_scope: str | None, payload: dict[str, Any]) -> MessageRecord:
    """The message of a message event as a query returns it at this moment (read through the event's loaders:
    Twilio's delivery summary, media and edits included), behind the access rule; as the webhook described it
    when Twilio cannot say (an outage, or removed since: its REMOVED event follows)."""
    described = message_from_webhook(payload)
    scope = await authorize(context, service_scope, described.conversation_sid)
    try:
        return await context.loaders.message.load((scope, described.conversation_sid, described.sid))
    except UpstreamError:
        return described


def message_from_webhook(payload: dict[str, Any]) -> MessageRecord:
    """The message as an onMessageAdded/Updated webhook described it (no upstream read)."""
    return MessageRecord.from_dict(
        {
            "sid": payload["message_sid"],
            "conversation_sid": payload["conversation_sid"],
            "index": payload.get("index") or 0,
            "account_sid": payload.get("account_sid"),
            "chat_service_sid": payload.get("service_sid"),
            "author": payload.get("author"),
            "body": payload.get("body"),
            "media": payload.get("media") or None,
            "attributes": payload.get("attributes"),
            "participant_sid": payload.get("participant_sid"),
            "date_created": payload.get("date_created"),
            "date_updated": payload.get("date_updated"),
        }
    )
