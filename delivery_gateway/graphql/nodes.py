"""Global IDs of the API (`node(id)`): how Conversation, Message and Participant IDs are built and read back.

Never trusts an ID: a malformed one is BAD_USER_INPUT, and every node is authorized like its root field.
"""

from __future__ import annotations

import json
from typing import Any

import strawberry
from graphql import GraphQLObjectType
from strawberry import Schema, relay
from strawberry.types import Info

from delivery_gateway.graphql.errors import BadUserInput

_NO_SERVICE = "-"  # stands for the account's default service in an ID


def node_id(service_scope: str | None, *sids: str) -> str:
    """`{service or -}/{sid}/...`: the service scope a node was read through is part of its identity."""
    return "/".join((service_scope or _NO_SERVICE, *sids))


def parse_node_id(value: str, sids: int) -> tuple[str | None, list[str]]:
    """(service scope, the `sids` SIDs) of an ID made by `node_id`; the SIDs are checked by whoever loads them."""
    service, *rest = value.split("/")
    if len(rest) != sids:
        raise BadUserInput("id: not a global ID of this API", argument="id")
    return (None if service == _NO_SERVICE else service), rest


def skip_node_type_checks(schema: Schema) -> None:
    """graphql-core asks an object type with an `is_type_of` about every object served as it. Strawberry gives one to
    each type implementing an interface (here the relay Nodes: Conversation, Message, Participant) and to no other
    type of this API. Resolvers return those types' own objects, and a Node served through the interface is resolved
    by Strawberry's `resolve_type` (isinstance), so these types are served like every other one: without the check
    (one call fewer per object served)."""
    for graphql_type in schema._schema.type_map.values():
        if isinstance(graphql_type, GraphQLObjectType) and graphql_type.interfaces:
            graphql_type.is_type_of = None


def json_value(text: str | None) -> Any:
    """Twilio's `attributes` JSON text as JSON; text that is not JSON stays text."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any Conversation, Message or Participant by global ID (same access rules).")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        # A plain field rather than relay.node(): that one's extension mutates the field, so the schema could
        # be built only once per process (tests build several, e.g. with introspection on and off).
        return await id.resolve_node(info)
