"""The executor every operation runs with: request-scoped state of its own for each subscription event, and for
each operation of a WebSocket; one execution per event for subscribers of the same subscription.

graphql-core resolves each event of a subscription with a copy of the operation's executor
(`build_per_event_executor`, the event as root value); this executor also gives the copy a fresh context
(`RequestContext.for_event`), so each event is resolved with its own loaders and memos, as a query at that moment
would be, and dropped with them once it is sent. A query or mutation sent over a WebSocket gets a context of its own
too (the connection's context outlives it and is shared by every operation on the socket); a subscription waiting
for its next event holds none beyond the connection's. Subscribers whose document,
operation, variables and caller scope are the same form a group: the event is executed once for the group
(graphql/live/fanout.py) and its result handed to each of them.

It also gives each event's executor its own memo of collected subfields: graphql-core 3.3's per-event copy shares
the operation's memo, keyed by the identity of lists each event makes anew, so every event delivered added entries
(kilobytes) to it for as long as the subscription lived.

Never lets two events, or two operations of one connection, share request-scoped state; never shares an event's
result across caller scopes; never replaces the context of an HTTP request (it is that request's own already).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Hashable, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    OperationType,
)
from graphql.execution import Executor
from graphql.pyutils import gather_with_cancel

from delivery_gateway.graphql.awaitable import is_awaitable
from delivery_gateway.graphql.completion import LeanCompletion, LeanResolveInfo
from delivery_gateway.graphql.context import RequestContext
from delivery_gateway.graphql.live.fanout import variables_key


class EventScopedExecutor(LeanCompletion, LeanResolveInfo):
    """Strawberry's executor, with a fresh context per WebSocket operation and per subscription event, and one
    execution per event for a group of identical subscriptions; values completed with less per-field work
    (graphql/completion.py), and no reference cycle keeping a finished operation's objects alive."""

    group: Hashable | None = None  # set on per-event executors whose result subscribers of its group may share
    cursor: str = ""  # the event's cursor, with `group`

    @classmethod
    def build(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        root_value: Any = None,
        context_value: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> list[GraphQLError] | Executor:
        executor = super().build(schema, document, root_value, context_value, *args, **kwargs)
        if isinstance(executor, Executor):
            executor.is_awaitable = is_awaitable  # type: ignore[assignment]  # per-type answer (graphql/awaitable.py)
            executor.async_helpers = _acyclic_helpers(executor)
        if isinstance(executor, Executor) and isinstance(context_value, RequestContext) and context_value.is_connection:
            if executor.operation.operation is not OperationType.SUBSCRIPTION:  # each event gets its own anyway
                executor.context_value = context_value.for_event()
        return executor

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}  # per event: its keys are the event's own lists (see the module doc)
        if isinstance(self.context_value, RequestContext):
            executor.context_value = self.context_value.for_event()
            cursor = getattr(payload, "cursor", None)
            if isinstance(executor, EventScopedExecutor) and isinstance(cursor, str):
                executor.group, executor.cursor = self._event_group(self.context_value), cursor
        return executor

    def _event_group(self, context: RequestContext) -> Hashable | None:
        """(document, operation, variables, caller scope); None when the event cannot be shared."""
        loc = self.operation.loc
        if loc is None or not context.authenticated:
            return None
        name = self.operation.name.value if self.operation.name else None
        variables = variables_key(self.variable_values.coerced)
        return (loc.source.body, name, variables, context.caller.scope)

    def execute_operation(self, serially: bool | None = None) -> Any:
        if self.group is None or not isinstance(self.context_value, RequestContext):
            return super().execute_operation(serially)

        async def execute() -> ExecutionResult:
            result = super(EventScopedExecutor, self).execute_operation(serially)
            return await result if self.is_awaitable(result) else result  # type: ignore[return-value]

        return self.context_value.services.fanout.run(self.group, self.cursor, execute)


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    """graphql-core's `Executor.gather_async_work`, which uses nothing of its executor."""
    return gather_with_cancel(*values)


def _acyclic_helpers(executor: Executor) -> GraphQLResolveInfoHelpers:
    """The resolvers' async helpers (`info.async_helpers`) without a reference cycle through the executor.

    graphql-core builds them from the executor's bound methods and keeps them on the executor: a cycle, so an
    executor and everything it holds (the request's context, its loaders and their futures, the collected fields:
    about 600 objects and 1,000 memory blocks per chat screen) outlived the request until the next young collection,
    and each request was served from memory not yet reused. Here `track` holds the executor weakly, so the request's
    objects are freed by reference counting as soon as its response is built. An executor is alive whenever a
    resolver of its operation runs (it is on the stack), so `track` always finds it then.
    """
    ref = weakref.ref(executor)

    def track(values: Sequence[Any]) -> None:
        live = ref()
        if live is not None:
            live.track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=_gather, track=track)
