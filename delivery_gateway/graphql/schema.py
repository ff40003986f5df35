"""Assembles the GraphQL schema from the domains' root fields and the extensions the settings ask for.

Never performs I/O at build time; adding a domain's root fields is a one-line change to the root types here.
"""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import lexicographic_sort_schema, print_schema
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache

from delivery_gateway.graphql.completion import serve_attributes
from delivery_gateway.graphql.conversation.schema import ConversationQuery
from delivery_gateway.graphql.errors import GatewayErrors, GatewaySchema
from delivery_gateway.graphql.leaf_output import install_leaf_output
from delivery_gateway.graphql.limits import limit_extensions
from delivery_gateway.graphql.live.execution import EventScopedExecutor
from delivery_gateway.graphql.live.schema import LiveSubscription
from delivery_gateway.graphql.message.mutations import MessageMutation
from delivery_gateway.graphql.message.schema import MessageQuery
from delivery_gateway.graphql.nodes import NodeQuery, skip_node_type_checks
from delivery_gateway.graphql.operation_log import OperationLogExtension
from delivery_gateway.graphql.reports.schema import ReportsQuery
from delivery_gateway.kernel.settings import Settings

__all__ = ["Mutation", "Query", "Subscription", "build_schema", "schema_sdl"]


@strawberry.type
class Query(NodeQuery, ConversationQuery, MessageQuery, ReportsQuery):
    pass


@strawberry.type
class Mutation(MessageMutation):
    pass


@strawberry.type
class Subscription(LiveSubscription):
    pass


def build_schema(settings: Settings) -> GatewaySchema:
    # The error path comes first: it codes syntax errors and masks unexpected ones. The limits then reject
    # over-limit operations before any resolver runs (the cost check sits in on_execute, so ValidationCache
    # cannot skip it) and switch introspection off when the settings say so.
    extensions: list[Callable[[], SchemaExtension]] = [
        GatewayErrors,
        *limit_extensions(settings),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        OperationLogExtension,
    ]
    # Each subscription event (and each operation of a WebSocket) is resolved with a context of its own.
    schema = GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=EventScopedExecutor,
    )
    install_leaf_output(schema)  # enum values and timestamps served without repeated work (graphql/leaf_output.py)
    skip_node_type_checks(schema)  # no per-object type check for Node types (graphql/nodes.py)
    serve_attributes(schema)  # fields without code read in one call (graphql/completion.py)
    return schema


def schema_sdl(settings: Settings | None = None) -> str:
    """The schema as SDL, lexicographically sorted for stable diffs (what `schema.graphql` holds)."""
    schema = build_schema(settings or Settings(_env_file=None))
    return print_schema(lexicographic_sort_schema(schema._schema)) + "\n"
