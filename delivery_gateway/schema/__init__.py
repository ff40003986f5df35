"""Builds the GraphQL schema of the gateway from its root types and the extensions the settings ask for.

Never performs I/O at build time; registering another root (mutation, subscription) is a one-line change here.
"""

from __future__ import annotations

from graphql import GraphQLSchema, lexicographic_sort_schema, print_schema
from strawberry.extensions import ParserCache, ValidationCache

from delivery_gateway.kernel.settings import Settings
from delivery_gateway.limits import limit_extensions
from delivery_gateway.schema.errors import GatewaySchema
from delivery_gateway.schema.mutation import Mutation
from delivery_gateway.schema.query import Query
from delivery_gateway.schema.subscription import Subscription

__all__ = ["build_schema", "schema_sdl"]


def build_schema(settings: Settings) -> GatewaySchema:
    # The limits come first: they give syntax errors their code, reject over-limit operations before any
    # resolver runs (the cost check sits in on_execute, so ValidationCache cannot skip it), switch
    # introspection off when settings say so, and mask unexpected errors.
    extensions: list = [
        *limit_extensions(settings),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
    )


def schema_sdl(settings: Settings | None = None) -> str:
    """The schema as SDL, lexicographically sorted for stable diffs (what `schema.graphql` holds)."""
    schema = build_schema(settings or Settings(_env_file=None))
    graphql_schema: GraphQLSchema = schema._schema
    return print_schema(lexicographic_sort_schema(graphql_schema)) + "\n"
