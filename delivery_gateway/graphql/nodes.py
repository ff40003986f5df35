"""Global IDs of the API (`node(id)`): how Conversation, Message and Participant IDs are built and read back.

Never trusts an ID: a malformed one is BAD_USER_INPUT, and every node is authorized like its root field.
"""

from __future__ import annotations

import json
from typing import Any

import strawberry
from strawberry import relay
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


def is_node_instance(cls: type, obj: Any) -> bool:
    """What a Node type's `is_type_of` answers (graphql-core checks every object served as that type): an instance
    of it. Strawberry's default for types with interfaces first looks for a `strawberry.cast` mark on the object (an
    AttributeError raised and caught per object served); this API casts nothing. Each Node type inlines it."""
    return isinstance(obj, cls)


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
