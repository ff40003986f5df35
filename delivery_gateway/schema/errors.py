"""Turns resolver exceptions into GraphQL errors with `extensions.code` (one place, for every operation type).

Never logs expected client/upstream failures as server errors, and never exposes internals of unknown ones.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry import Schema
from strawberry.types import ExecutionContext

from delivery_gateway.resolvers.errors import error_extensions


def annotate(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Adds `extensions.code` (and details) to errors raised by resolvers; returns those left unexplained."""
    unexplained = []
    for error in errors:
        original = error.original_error
        extensions = error_extensions(original)
        if extensions is not None:
            error.extensions = {**(error.extensions or {}), **extensions}
        elif original is not None and not error.path:  # variable coercion: the client's input
            error.extensions = {**(error.extensions or {}), "code": "BAD_USER_INPUT"}
        elif original is not None:
            error.extensions = {**(error.extensions or {}), "code": "INTERNAL_SERVER_ERROR"}
            unexplained.append(error)
    return unexplained


class GatewaySchema(Schema):
    """strawberry.Schema whose errors carry codes; only unexplained ones are logged as errors."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        unexplained = annotate(errors)
        if unexplained:
            super().process_errors(unexplained, execution_context)
