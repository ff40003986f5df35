"""The reference of row 2: plain Strawberry serving the chat screen synchronously from in-memory objects.

The same query shape and the same response as the gateway's, built from the gateway's own answer: every field is
a plain attribute except the two with arguments (`conversation(sid)`, `messages(last)`), which are small sync
resolvers. Never does I/O, never creates a task, never touches the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.extensions import ParserCache, ValidationCache


@strawberry.type
class Participant:
    sid: str | None = None
    identity: str | None = None
    channel: str | None = None
    address: str | None = None
    last_read_message_index: int | None = None


@strawberry.type
class DeliverySummary:
    total: int
    sent: str
    delivered: str
    read: str
    failed: str
    undelivered: str


@strawberry.type
class ReceiptError:
    name: str
    description: str
    retryable: bool


@strawberry.type
class Receipt:
    sid: str
    status: str | None
    error_code: int | None
    error: ReceiptError | None
    channel: str
    participant: Participant | None


@strawberry.type
class Recipient:
    participant: Participant
    status: str
    source: str
    error_code: int | None
    updated_at: str | None


@strawberry.type
class Message:
    sid: str
    index: int
    author: str | None
    body: str | None
    ticks: str | None
    delivery: DeliverySummary | None
    receipts: list[Receipt] | None
    recipients: list[Recipient] | None


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type
class PageInfo:
    has_previous_page: bool
    start_cursor: str | None


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo


@strawberry.type
class Conversation:
    friendly_name: str | None
    participants: list[Participant] | None
    edges: strawberry.Private[list[MessageEdge]]
    has_previous: strawberry.Private[bool]

    @strawberry.field
    def messages(self, last: int = 50) -> MessageConnection:
        edges = self.edges[-last:] if last else []
        has_previous = self.has_previous or len(edges) < len(self.edges)
        return MessageConnection(
            edges=edges,
            page_info=PageInfo(has_previous_page=has_previous, start_cursor=edges[0].cursor if edges else None),
        )


@dataclass
class _Data:
    conversations: dict[str, Conversation]


@strawberry.type
class Query:
    @strawberry.field
    def conversation(self, info: strawberry.Info, sid: str) -> Conversation | None:
        return info.context.conversations.get(sid)


def _participant(d: dict[str, Any] | None) -> Participant | None:
    if d is None:
        return None
    return Participant(
        sid=d.get("sid"),
        identity=d.get("identity"),
        channel=d.get("channel"),
        address=d.get("address"),
        last_read_message_index=d.get("lastReadMessageIndex"),
    )


def _receipt(d: dict[str, Any]) -> Receipt:
    error = d.get("error")
    return Receipt(
        sid=d["sid"],
        status=d.get("status"),
        error_code=d.get("errorCode"),
        error=ReceiptError(**error) if error else None,
        channel=d["channel"],
        participant=_participant(d.get("participant")),
    )


def _recipient(d: dict[str, Any]) -> Recipient:
    return Recipient(
        participant=_participant(d["participant"]),  # type: ignore[arg-type]
        status=d["status"],
        source=d["source"],
        error_code=d.get("errorCode"),
        updated_at=d.get("updatedAt"),
    )


def _message(d: dict[str, Any]) -> Message:
    receipts = d.get("receipts")
    recipients = d.get("recipients")
    delivery = d.get("delivery")
    return Message(
        sid=d["sid"],
        index=d["index"],
        author=d.get("author"),
        body=d.get("body"),
        ticks=d.get("ticks"),
        delivery=DeliverySummary(**delivery) if delivery else None,
        receipts=[_receipt(r) for r in receipts] if receipts is not None else None,
        recipients=[_recipient(r) for r in recipients] if recipients is not None else None,
    )


class PlainChatScreen:
    """`execute()` runs the chat-screen query on the plain schema; `data` is what the gateway answered."""

    def __init__(self, conversation_sid: str, gateway_data: dict[str, Any], query: str, operation: str) -> None:
        c = gateway_data["conversation"]
        messages = c["messages"]
        conversation = Conversation(
            friendly_name=c.get("friendlyName"),
            participants=[_participant(p) for p in c["participants"]],  # type: ignore[misc]
            edges=[MessageEdge(cursor=e["cursor"], node=_message(e["node"])) for e in messages["edges"]],
            has_previous=messages["pageInfo"]["hasPreviousPage"],
        )
        self.context = _Data({conversation_sid: conversation})
        self.variables = {"sid": conversation_sid}
        self.query = query
        self.operation = operation
        # The gateway caches parsing and validation too: the comparison is of execution.
        self.schema = strawberry.Schema(
            query=Query, extensions=[lambda: ParserCache(maxsize=16), lambda: ValidationCache(maxsize=16)]
        )

    def execute(self) -> Any:
        result = self.schema.execute_sync(
            self.query, variable_values=self.variables, context_value=self.context, operation_name=self.operation
        )
        if result.errors:
            raise RuntimeError(f"plain reference failed: {result.errors[0]}")
        return result
