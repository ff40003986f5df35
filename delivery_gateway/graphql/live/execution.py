"""The executor every operation runs with: request-scoped state of its own for each subscription event, and for
each operation of a WebSocket.

graphql-core resolves each event of a subscription with a copy of the operation's executor
(`build_per_event_executor`, the event as root value); this executor also gives the copy a fresh context
(`RequestContext.for_event`), so each event is resolved with its own loaders and memos, as a query at that moment
would be, and dropped with them once it is sent. An operation sent over a WebSocket gets a context of its own too
(the connection's context outlives it and is shared by every operation on the socket).

It also gives each event's executor its own memo of collected subfields: graphql-core 3.3's per-event copy shares
the operation's memo, keyed by the identity of lists each event makes anew, so every event delivered added entries
(kilobytes) to it for as long as the subscription lived.

Never lets two events, or two operations of one connection, share request-scoped state; never replaces the context
of an HTTP request (it is that request's own already).
"""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from delivery_gateway.graphql.context import RequestContext


class EventScopedExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with a fresh context per WebSocket operation and per subscription event."""

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
        if isinstance(context_value, RequestContext) and context_value.is_connection:
            context_value = context_value.for_event()
        return super().build(schema, document, root_value, context_value, *args, **kwargs)

    def build_per_event_executor(self, payload: Any) -> Executor:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}  # per event: its keys are the event's own lists (see the module doc)
        if isinstance(self.context_value, RequestContext):
            executor.context_value = self.context_value.for_event()
        return executor
