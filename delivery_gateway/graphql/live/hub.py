"""Live hubs: per process, ONE stream and ONE execution per event for every WebSocket subscriber of a group, written
to each socket as one pre-serialised frame.

A group is the subscribers whose document, operation, variables and caller scope are the same (as in
graphql/live/fanout.py), subscribed without `after`, to a field that follows a change stream (live/roles.py).
Its hub runs the subscription once, through the schema as any subscription runs (limits, error masking,
extensions), with a context of the group's caller scope: one pub/sub subscription, one duplicate window, one
execution per event with a context of its own (graphql/live/execution.py), and the payload serialised once. Per
subscriber it keeps a `HubMember` (its operation id spliced into the frame's prefix) and writes the frame through
the socket's `Outbox`; an idle subscriber has no task, generator or queue of its own.

Guarantees kept from the per-subscriber path:
- Authorization per subscriber before anything is read: a subscriber joins only once its own subscription,
  run as an `Admission`, authorized it (its errors, validation included, are sent as they always were).
- Errors per subscriber: a result with errors is never shared; each subscriber executes that change alone
  (`PinnedChange`), authorized and masked as itself.
- Scopes never shared: the caller scope is part of the group.
- Slow consumers stall no one: a socket whose outbox has `limit` frames waiting (the pub/sub queue size) loses
  its hub subscriptions with SLOW_CONSUMER and `complete`, as a pub/sub subscriber that falls behind does; it
  resumes with `after` = the last cursor it received.
- No leak: a hub ends (its stream closed, its pub/sub subscription with it) when its last subscriber leaves;
  `subscriptions_active` counts each subscriber from when its hub listens until it leaves.
- Freshness: each event is executed when it arrives, as a query at that moment would be.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    get_operation_ast,
    parse,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from delivery_gateway.graphql.errors import INTERNAL, MASKED_MESSAGE, classify
from delivery_gateway.graphql.live.fanout import EventFanout, variables_key
from delivery_gateway.graphql.live.outbox import Outbox, Send, WriteFrame
from delivery_gateway.graphql.live.roles import SHAREABLE_FIELDS, Admission, HubSource, PinnedChange
from delivery_gateway.http.websocket import text_frame
from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.pubsub import SlowConsumer

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

    from delivery_gateway.graphql.context import RequestContext

log = logging.getLogger("delivery_gateway.live")

Encode = Callable[[object], str]


@functools.lru_cache(maxsize=256)
def _parsed(query: str) -> DocumentNode | None:
    """The document of a subscription text (None when it does not parse: the per-operation path reports that)."""
    try:
        return parse(query)
    except GraphQLError:
        return None


def group_of(
    schema: GraphQLSchema, query: object, variables: object, operation_name: object, context: RequestContext
) -> Hashable | None:
    """The group a subscription belongs to, or None when it runs on its own: not authenticated, not a single
    shareable field, `after` given (a resume replays alone), or anything graphql-core would refuse (the
    per-operation path answers that as it always did)."""
    if not context.authenticated or not isinstance(query, str):
        return None
    if variables is not None and not isinstance(variables, dict):
        return None
    if operation_name is not None and not isinstance(operation_name, str):
        return None
    document = _parsed(query)
    if document is None:
        return None
    operation = get_operation_ast(document, operation_name)
    subscription = schema.subscription_type
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION or subscription is None:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    node = selections[0]
    definition = subscription.fields.get(node.name.value)
    if node.name.value not in SHAREABLE_FIELDS or definition is None or node.directives:
        return None
    try:
        coerced = get_variable_values(schema, operation.variable_definitions or (), variables or {})
        if not isinstance(coerced, VariableValues):
            return None
        if get_argument_values(definition, node, coerced).get("after") is not None:
            return None
        key = variables_key(coerced.coerced)
    except (GraphQLError, TypeError, ValueError):
        return None
    return (query, operation_name, key, context.caller.scope)


def _slow_consumer_error(queue_size: int) -> dict[str, Any]:
    error = GraphQLError("", original_error=SlowConsumer("websocket", queue_size))
    error.message = str(error.original_error)
    classify(error)
    return error.formatted  # type: ignore[return-value]


class HubConnection:
    """One graphql-transport-ws socket's part in hubs: its outbox and its subscriptions that hubs serve.

    `forget` removes an operation id from the socket's handler once its subscription ended (it may be reused).
    """

    __slots__ = ("context", "encode", "forget", "members", "outbox")

    def __init__(
        self,
        context: RequestContext,
        send: Send,
        limit: int,
        encode: Encode,
        forget: Callable[[str], None],
        write_frame: WriteFrame | None = None,
    ) -> None:
        self.context = context
        self.outbox = Outbox(send, limit, write_frame)
        self.encode = encode
        self.forget = forget
        self.members: dict[str, HubMember] = {}

    def end(self, member: HubMember, payload: dict[str, Any] | None) -> None:
        """`member`'s subscription is over: its last `next` (if any) and `complete`, then its id is free."""
        if self.members.get(member.id) is not member:
            return
        del self.members[member.id]
        if payload is not None:
            self.outbox.force(self.encode({"id": member.id, "type": "next", "payload": payload}))
        self.outbox.force(self.encode({"id": member.id, "type": "complete"}))
        self.forget(member.id)

    def fell_behind(self) -> None:
        """The socket did not read `limit` frames: every hub subscription on it ends with SLOW_CONSUMER (what it
        did not receive is dropped; it resumes with `after`)."""
        if not self.members:
            return  # ended already (another of its subscriptions fell behind first)
        self.outbox.drop_waiting()
        payload = {"data": None, "errors": [_slow_consumer_error(self.outbox.limit)]}
        for member in list(self.members.values()):
            member.hub.leave(member)
            self.end(member, payload)


class HubMember:
    """One subscription a hub serves: its socket and its operation id, spliced into each frame's prefix."""

    __slots__ = ("connection", "counted", "hub", "id", "prefix")

    def __init__(self, connection: HubConnection, operation_id: str, hub: Hub) -> None:
        self.connection = connection
        self.id = operation_id
        self.hub = hub
        self.prefix = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        self.counted = False


class Hub:
    """One group's stream, execution and subscribers (see the module doc)."""

    def __init__(self, hubs: LiveHubs, key: Hashable, schema: BaseSchema, request: SubscriptionRequest) -> None:
        self.hubs = hubs
        self.key = key
        self.schema = schema
        self.request = request
        self.members: dict[int, HubMember] = {}  # by id(member), in join order
        self.source = HubSource()
        self.task: asyncio.Task[None] | None = None
        self.ended = False  # the stream is over: members still listed are being told

    def __len__(self) -> int:
        return len(self.members)

    async def join(self, member: HubMember, context: RequestContext) -> bool:
        """Adds `member`; True once the hub listens (it receives every event from then on), False if the hub
        ended first (its members were told why)."""
        self.members[id(member)] = member
        if self.task is None:
            # The hub outlives whoever started it: none of that request's context variables go with it.
            self.task = asyncio.create_task(self._run(context), context=contextvars.Context())
        if not self.source.listening.is_set():
            listening = asyncio.ensure_future(self.source.listening.wait())
            try:
                await asyncio.wait((listening, self.task), return_when=asyncio.FIRST_COMPLETED)
            finally:
                listening.cancel()
        if id(member) not in self.members or not self.source.listening.is_set():
            return False
        member.counted = True
        self.hubs.metrics.subscriptions_active.inc()
        return True

    def leave(self, member: HubMember) -> None:
        if self.members.pop(id(member), None) is None:
            return
        if member.counted:
            member.counted = False
            self.hubs.metrics.subscriptions_active.dec()
        if not self.members:
            self.hubs.forget(self)
            if self.task is not None and not self.ended:
                self.task.cancel()  # closes the stream, and its pub/sub subscription with it

    async def _run(self, founder: RequestContext) -> None:
        """The group's subscription, run once; each result goes to every member (or each executes it alone)."""
        context = founder.for_group()
        context.live = self.source
        request = self.request
        ended: dict[str, Any] | None = None
        try:
            stream = await self.schema.subscribe(
                request.query, request.variables, context, None, request.operation_name
            )
            async with aclosing(stream):
                async for result in stream:
                    change, self.source.current = self.source.current, None
                    if change is None or isinstance(result, PreExecutionError):
                        # The stream's own failure, not an event's (its pub/sub queue overflowed: SLOW_CONSUMER;
                        # the schema refused it): every subscription ends with it, and resumes with `after`.
                        ended = _payload(result)
                        break
                    if result.errors:
                        await self._each_alone(change)
                    else:
                        self._deliver(result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live hub failed")
            ended = {"data": None, "errors": [{"message": MASKED_MESSAGE, "extensions": {"code": INTERNAL}}]}
        finally:
            self.ended = True
            self.hubs.forget(self)
        for member in list(self.members.values()):  # the stream ended: so does every subscription
            self.leave(member)
            member.connection.end(member, ended)

    def _deliver(self, result: ExecutionResult) -> None:
        """One result, serialised once, to every member: only the operation id differs between their frames."""
        payload: dict[str, Any] = {"data": result.data}
        if result.extensions:
            payload["extensions"] = result.extensions
        text = self.request.encode(payload) + "}"
        members = list(self.members.values())
        slow: dict[int, HubConnection] = {}
        # Per operation id prefix (most subscribers share one): the frame's text and its wire bytes, built once.
        built: dict[str, tuple[str, bytes]] = {}
        for member in members:
            prefix = member.prefix
            frame = built.get(prefix)
            if frame is None:
                full = prefix + text
                frame = built[prefix] = (full, text_frame(full.encode()))
            if not member.connection.outbox.put(*frame):
                slow[id(member.connection)] = member.connection
        for connection in slow.values():
            connection.fell_behind()
        self.hubs.fanout.note_shared(len(members) - 1)

    async def _each_alone(self, change: Any) -> None:
        """A result with errors: every member executes the change as itself (authorized, masked and logged as its
        own), and gets its own result."""

        async def alone(member: HubMember) -> None:
            connection = member.connection
            context = connection.context.for_event()
            context.live = PinnedChange(change)
            request = self.request
            stream = await self.schema.subscribe(
                request.query, request.variables, context, None, request.operation_name
            )
            async with aclosing(stream):
                async for result in stream:
                    if id(member) in self.members:
                        frame = {"id": member.id, "type": "next", "payload": _payload(result)}
                        if not connection.outbox.put(connection.encode(frame)):
                            connection.fell_behind()

        outcomes = await asyncio.gather(*(alone(m) for m in list(self.members.values())), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("live hub: a subscriber's own execution failed", exc_info=outcome)


def _payload(result: ExecutionResult) -> dict[str, Any]:
    """A result as a `next` payload (graphql-transport-ws), as Strawberry's handler words it."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


class SubscriptionRequest:
    """What the group's subscribers asked (the same for all of them), and how frames are serialised."""

    __slots__ = ("encode", "operation_name", "query", "variables")

    def __init__(self, query: str, variables: dict[str, Any] | None, operation_name: str | None, encode: Encode):
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.encode = encode


class LiveHubs:
    """Per process: the hub of each group with live subscribers (none once a group's last subscriber left)."""

    def __init__(self, metrics: Metrics, fanout: EventFanout) -> None:
        self.metrics = metrics
        self.fanout = fanout
        self._hubs: dict[Hashable, Hub] = {}

    def __len__(self) -> int:
        return len(self._hubs)

    def hubs(self) -> list[Hub]:
        return list(self._hubs.values())

    def hub_for(self, key: Hashable, schema: BaseSchema, request: SubscriptionRequest) -> Hub:
        hub = self._hubs.get(key)
        if hub is None:
            hub = self._hubs[key] = Hub(self, key, schema, request)
        return hub

    def forget(self, hub: Hub) -> None:
        if self._hubs.get(hub.key) is hub:
            del self._hubs[hub.key]


async def admit(
    schema: BaseSchema,
    request: SubscriptionRequest,
    context: RequestContext,
    send_results: Callable[[Any], Awaitable[int]],
) -> bool:
    """Runs the subscriber's own subscription as an `Admission`: True when it was authorized and nothing was sent
    (it may join the hub); otherwise `send_results` sent what the subscription answered (its errors)."""
    admission = Admission()
    context.live = admission
    stream = await schema.subscribe(request.query, request.variables, context, None, request.operation_name)
    async with aclosing(stream):
        sent = await send_results(stream)
    return admission.admitted and not sent
