"""The change stream of a conversation: what the ledger recorded after a cursor, then live changes from pub/sub,
in order, each exactly once.

Never knows about GraphQL (graphql/live/ presents these changes) and never buffers without bound.
"""

from delivery_gateway.changes.stream import CursorExpired, conversation_changes

__all__ = ["CursorExpired", "conversation_changes"]
