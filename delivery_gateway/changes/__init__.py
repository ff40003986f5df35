"""The change streams of a conversation and of a whole Conversation Service: what the ledger recorded after a
cursor, then live changes from pub/sub, in order, each exactly once.

Never knows about GraphQL (graphql/live/ presents these changes) and never buffers without bound.
"""

from delivery_gateway.changes.stream import CursorExpired, conversation_changes, service_delivery_changes

__all__ = ["CursorExpired", "conversation_changes", "service_delivery_changes"]
