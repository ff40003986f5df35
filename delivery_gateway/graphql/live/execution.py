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

from collections.abc import Hashable
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, OperationType
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from delivery_gateway.graphql.awaitable import is_awaitable
from delivery_gateway.graphql.context import RequestContext
from delivery_gateway.graphql.live.fanout import variables_key


class EventScopedExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with a fresh context per WebSocket operation and per subscription event, and one
    execution per event for a group of identical subscriptions."""

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
