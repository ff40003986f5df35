"""An in-memory ConversationsAPI for unit tests of the GraphQL layer, counting every call by method.

Never does I/O; page tokens are opaque strings like Twilio's, with previous/next tokens for either order.
Messages carry the delivery summary the real rule (delivery/summary.py) computes from their receipts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from delivery_gateway.delivery.summary import summarize_receipts
from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import (
    ConfigurationRecord,
    ConversationRecord,
    DeliveryStatus,
    MessageRecord,
    Page,
    ParticipantRecord,
    ReceiptRecord,
)
from delivery_gateway.upstream.errors import UpstreamNotFound

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeConversation:
    record: ConversationRecord
    participants: list[ParticipantRecord] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    receipts: dict[str, list[ReceiptRecord]] = field(default_factory=dict)


def _page(items: list, size: int, token: str | None, order: str):
    offset = int(token[3:]) if token else 0
    chunk = items[offset : offset + size]
    nxt = f"PT{order[0]}{offset + size}" if offset + size < len(items) else None
    prev = f"PT{order[0]}{max(0, offset - size)}" if offset > 0 else None
    return Page(items=chunk, page_size=size, next_page_token=nxt, previous_page_token=prev)


DEFAULT_SERVICE = "IS" + "d0" * 16  # the account's default Conversation Service (GET /v1/Configuration)


class FakeConversations:
    def __init__(self) -> None:
        self.conversations: dict[str, FakeConversation] = {}
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, Exception] = {}  # method name -> error to raise (UpstreamErrors, or a bug)
        self.created_with_webhooks: list[bool] = []  # create_message's webhook_enabled, per call

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.fail:
            raise self.fail[name]

    def _conv(self, sid: str) -> FakeConversation:
        if sid not in self.conversations:
            raise UpstreamNotFound(f"conversation {sid} not found", status=404, twilio_code=20404)
        return self.conversations[sid]

    # Builders ------------------------------------------------------------------------------------

    def add_conversation(self, friendly_name: str = "chat", sid: str | None = None) -> FakeConversation:
        sid = sid or sids.new_sid(sids.CONVERSATION)
        conv = FakeConversation(
            ConversationRecord(
                sid=sid,
                friendly_name=friendly_name,
                state="active",
                attributes="{}",
                date_created=T0,
                date_updated=T0,
            )
        )
        self.conversations[sid] = conv
        return conv

    def add_chat(self, conv: FakeConversation, identity: str, last_read: int | None = None) -> ParticipantRecord:
        p = ParticipantRecord(
            sid=sids.new_sid(sids.PARTICIPANT),
            conversation_sid=conv.record.sid,
            identity=identity,
            last_read_message_index=last_read,
            last_read_timestamp=T0 if last_read is not None else None,
        )
        conv.participants.append(p)
        return p

    def add_binding(self, conv: FakeConversation, kind: str, address: str) -> ParticipantRecord:
        p = ParticipantRecord(
            sid=sids.new_sid(sids.PARTICIPANT),
            conversation_sid=conv.record.sid,
            messaging_binding={"type": kind, "address": address, "proxy_address": "+15550000000"},
        )
        conv.participants.append(p)
        return p

    def set_read(self, conv: FakeConversation, participant: ParticipantRecord, index: int) -> None:
        conv.participants = [
            replace(p, last_read_message_index=index) if p.sid == participant.sid else p for p in conv.participants
        ]

    def add_message(
        self,
        conv: FakeConversation,
        author: ParticipantRecord,
        body: str = "hi",
        statuses: dict[str, tuple[DeliveryStatus, int | None]] | None = None,
    ) -> MessageRecord:
        """`statuses`: participant SID -> (status, error code), one receipt each."""
        index = len(conv.messages)
        sid = sids.new_sid(sids.MESSAGE)
        receipts = [
            ReceiptRecord(
                sid=sids.new_sid(sids.RECEIPT),
                conversation_sid=conv.record.sid,
                message_sid=sid,
                participant_sid=psid,
                channel_message_sid=sids.new_sid("SM"),
                status=status,
                error_code=code,
                date_created=T0,
                date_updated=T0 + timedelta(seconds=index),
            )
            for psid, (status, code) in (statuses or {}).items()
        ]
        # The gateway's own summary rule (delivery/summary.py), so the double agrees with what the ledger and
        # webhooks compute; the emulator keeps an independent copy for the tests that need one.
        delivery = summarize_receipts(receipts)
        msg = MessageRecord(
            sid=sid,
            conversation_sid=conv.record.sid,
            index=index,
            author=author.identity or (author.messaging_binding or {}).get("address"),
            participant_sid=author.sid,
            body=body,
            attributes="{}",
            delivery=delivery,
            date_created=T0 + timedelta(seconds=index),
            date_updated=T0,
        )
        conv.messages.append(msg)
        conv.receipts[sid] = receipts
        return msg

    # ConversationsAPI ----------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def fetch_conversation(self, sid, *, service_sid=None):
        self._call("fetch_conversation")
        return self._conv(sid).record

    async def list_conversations(self, *, service_sid=None, page_size=50, page_token=None, state=None):
        self._call("list_conversations")
        items = [c.record for c in self.conversations.values() if state is None or c.record.state == state]
        return _page(items, page_size, page_token, "asc")

    async def fetch_message(self, conversation_sid, sid, *, service_sid=None):
        self._call("fetch_message")
        for m in self._conv(conversation_sid).messages:
            if m.sid == sid:
                return m
        raise UpstreamNotFound(f"message {sid} not found", status=404)

    async def list_messages(self, conversation_sid, *, service_sid=None, order="desc", page_size=50, page_token=None):
        self._call("list_messages")
        items = list(self._conv(conversation_sid).messages)
        if order == "desc":
            items.reverse()
        return _page(items, page_size, page_token, order)

    async def create_message(
        self,
        conversation_sid,
        *,
        service_sid=None,
        author=None,
        body=None,
        media_sid=None,
        attributes=None,
        webhook_enabled=False,
    ):
        """A new message with no receipts yet (the channel has not reported on it), as Twilio answers a POST."""
        self._call("create_message")
        self.created_with_webhooks.append(webhook_enabled)
        conv = self._conv(conversation_sid)
        msg = MessageRecord(
            sid=sids.new_sid(sids.MESSAGE),
            conversation_sid=conversation_sid,
            index=len(conv.messages),
            author=author,
            body=body,
            media=[{"sid": media_sid}] if media_sid else None,
            attributes=attributes,
            date_created=T0 + timedelta(seconds=len(conv.messages)),
            date_updated=T0,
        )
        conv.messages.append(msg)
        conv.receipts[msg.sid] = []
        return msg

    async def list_participants(self, conversation_sid, *, service_sid=None):
        self._call("list_participants")
        return list(self._conv(conversation_sid).participants)

    async def list_receipts(self, conversation_sid, message_sid, *, service_sid=None):
        self._call("list_receipts")
        return list(self._conv(conversation_sid).receipts.get(message_sid, []))

    async def fetch_receipt(self, conversation_sid, message_sid, sid, *, service_sid=None):
        raise NotImplementedError

    async def fetch_configuration(self):
        self._call("fetch_configuration")
        return ConfigurationRecord(default_chat_service_sid=DEFAULT_SERVICE)

    async def fetch_webhook_config(self, *, service_sid=None):
        raise NotImplementedError

    async def update_webhook_config(self, **kwargs):
        raise NotImplementedError
