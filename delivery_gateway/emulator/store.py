"""The emulator's in-memory Conversations data: services, conversations, participants, messages, receipts.

Synchronous and single-threaded (the event loop's thread); never does I/O, never sleeps, never draws delivery
outcomes itself (a `ReceiptPlanner` decides each receipt's path).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import datetime

from delivery_gateway import sids
from delivery_gateway.emulator.delivery import SENT
from delivery_gateway.emulator.models import (
    CHAT,
    SMS,
    WHATSAPP,
    WHATSAPP_PREFIX,
    Conversation,
    Message,
    MessagingBinding,
    Participant,
    Receipt,
    Service,
    WebhookSettings,
    utc_now,
)

# A receipt's path: its initial (status, error_code) followed by the steps the simulator will take.
ReceiptPath = list[tuple[str, int | None]]
ReceiptPlanner = Callable[[Participant, Message], ReceiptPath]
# Called with (message, its receipts, announce): `announce` says whether onMessageAdded should fire.
MessageListener = Callable[[Message, list[Receipt], bool], None]
SOURCES = {CHAT: "SDK", SMS: "SMS", WHATSAPP: "WHATSAPP"}


def sent_only(participant: Participant, message: Message) -> ReceiptPath:
    """The planner used when no simulator is attached: every receipt starts and stays `sent`."""
    return [(SENT, None)]


class SidFactory:
    """Fresh SIDs: seeded (reproducible) when the emulator has a seed, else `sids.new_sid`."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/sids") if seed is not None else None

    def __call__(self, prefix: str) -> str:
        if self._rng is None:
            return sids.new_sid(prefix)
        return f"{prefix}{self._rng.getrandbits(128):032x}"


class ConversationStore:
    """Every resource of one emulated account, with the lookups the routes and the simulator need."""

    def __init__(self, account_sid: str, *, seed: int | None = None, clock: Callable[[], datetime] = utc_now):
        self.account_sid = account_sid
        self.new_sid = SidFactory(seed)
        self.clock = clock
        self._seq = itertools.count(1)
        self.account_webhooks = WebhookSettings()
        self.services: dict[str, Service] = {}
        self.conversations: dict[str, Conversation] = {}
        self.participants: dict[str, dict[str, Participant]] = {}  # conversation sid -> sid -> participant
        self.messages: dict[str, dict[str, Message]] = {}  # conversation sid -> sid -> message (index order)
        self.receipts: dict[str, dict[str, Receipt]] = {}  # message sid -> sid -> receipt
        self.planner: ReceiptPlanner = sent_only
        self.message_listeners: list[MessageListener] = []
        self.default_service = self.create_service("Default Conversations Service")

    # Services and webhook settings.

    def create_service(self, friendly_name: str) -> Service:
        service = Service(sid=self.new_sid(sids.SERVICE), friendly_name=friendly_name, date_created=self.clock())
        self.services[service.sid] = service
        return service

    def webhook_settings(self, service_sid: str | None) -> WebhookSettings:
        """Account-level settings for the default service (or None), the service's own otherwise."""
        if service_sid is None or service_sid == self.default_service.sid:
            return self.account_webhooks
        return self.services[service_sid].webhooks

    # Conversations.

    def create_conversation(
        self,
        *,
        service_sid: str | None = None,
        friendly_name: str | None = None,
        unique_name: str | None = None,
        attributes: str = "{}",
        state: str = "active",
        messaging_service_sid: str | None = None,
        date_created: datetime | None = None,
    ) -> Conversation:
        now = date_created or self.clock()
        conversation = Conversation(
            sid=self.new_sid(sids.CONVERSATION),
            service_sid=service_sid or self.default_service.sid,
            friendly_name=friendly_name,
            unique_name=unique_name,
            attributes=attributes,
            state=state,
            messaging_service_sid=messaging_service_sid,
            date_created=now,
            date_updated=now,
            seq=next(self._seq),
        )
        self.conversations[conversation.sid] = conversation
        self.participants[conversation.sid] = {}
        self.messages[conversation.sid] = {}
        return conversation

    def find_conversation(self, service_sid: str, sid_or_unique_name: str) -> Conversation | None:
        conversation = self.conversations.get(sid_or_unique_name)
        if conversation is None:
            conversation = next((c for c in self.conversations.values() if c.unique_name == sid_or_unique_name), None)
        if conversation is None or conversation.service_sid != service_sid:
            return None
        return conversation

    def conversations_in(self, service_sid: str) -> list[Conversation]:
        return [c for c in self.conversations.values() if c.service_sid == service_sid]

    # Participants.

    def create_participant(
        self,
        conversation_sid: str,
        *,
        identity: str | None = None,
        address: str | None = None,
        proxy_address: str | None = None,
        attributes: str = "{}",
        role_sid: str | None = None,
        date_created: datetime | None = None,
    ) -> Participant:
        """A chat participant (`identity`) or an SMS/WhatsApp one (`address`, WhatsApp if `whatsapp:...`)."""
        now = date_created or self.clock()
        binding = None
        if address is not None:
            kind = WHATSAPP if address.startswith(WHATSAPP_PREFIX) else SMS
            binding = MessagingBinding(type=kind, address=address, proxy_address=proxy_address)
        participant = Participant(
            sid=self.new_sid(sids.PARTICIPANT),
            conversation_sid=conversation_sid,
            identity=identity,
            binding=binding,
            attributes=attributes,
            role_sid=role_sid,
            date_created=now,
            date_updated=now,
            seq=next(self._seq),
        )
        self.participants[conversation_sid][participant.sid] = participant
        return participant

    def find_participant_by(self, conversation_sid: str, *, identity: str | None, address: str | None):
        for participant in self.participants[conversation_sid].values():
            if identity is not None and participant.identity == identity:
                return participant
            if address is not None and participant.address == address:
                return participant
        return None

    # Messages and their receipts.

    def create_message(
        self,
        conversation_sid: str,
        *,
        author: str = "system",
        body: str | None = None,
        attributes: str = "{}",
        media: list[dict[str, object]] | None = None,
        content_sid: str | None = None,
        date_created: datetime | None = None,
        source: str | None = None,
        notify: bool = True,
        announce: bool = True,
    ) -> tuple[Message, list[Receipt]]:
        """Append a message and one receipt per non-chat participant other than the author.

        Each receipt's path comes from `self.planner`. With `notify`, listeners (the simulator) hear of it;
        with `announce` too, they fire onMessageAdded. `source` defaults to the author's channel (SDK for
        chat, SMS, WHATSAPP), or API for an author who is no participant.
        """
        conversation = self.conversations[conversation_sid]
        now = date_created or self.clock()
        author_participant = self.find_participant_by(conversation_sid, identity=author, address=author)
        message = Message(
            sid=self.new_sid(sids.MESSAGE),
            conversation_sid=conversation_sid,
            index=conversation.next_index,
            author=author,
            body=body,
            attributes=attributes,
            participant_sid=author_participant.sid if author_participant else None,
            media=media,
            content_sid=content_sid,
            date_created=now,
            date_updated=now,
            source=source or (SOURCES[author_participant.channel] if author_participant else "API"),
        )
        conversation.next_index += 1
        conversation.date_updated = now
        self.messages[conversation_sid][message.sid] = message
        receipts = []
        for participant in self.participants[conversation_sid].values():
            if participant.channel == CHAT or participant is author_participant:
                continue
            path = self.planner(participant, message)
            receipts.append(self._create_receipt(message, participant, path, now))
        self.receipts[message.sid] = {receipt.sid: receipt for receipt in receipts}
        if notify:
            for listener in self.message_listeners:
                listener(message, receipts, announce)
        return message, receipts

    def _create_receipt(self, message: Message, participant: Participant, path: ReceiptPath, now: datetime):
        (status, error_code), *planned = path
        # Twilio's channel SIDs: SM for SMS; for WhatsApp the docs show WA..., which we use too.
        channel_prefix = "WA" if participant.channel == WHATSAPP else "SM"
        receipt = Receipt(
            sid=self.new_sid(sids.RECEIPT),
            conversation_sid=message.conversation_sid,
            message_sid=message.sid,
            participant_sid=participant.sid,
            channel_message_sid=self.new_sid(channel_prefix),
            status=status,
            error_code=error_code,
            date_created=now,
            date_updated=now,
            seq=next(self._seq),
            planned=planned,
        )
        receipt.advance(status, error_code, now)
        return receipt

    def update_message(
        self,
        message: Message,
        *,
        body: str | None = None,
        author: str | None = None,
        attributes: str | None = None,
    ) -> Message:
        if body is not None:
            message.body = body
        if author is not None:
            message.author = author
        if attributes is not None:
            message.attributes = attributes
        message.date_updated = self.clock()
        return message

    def find_message(self, conversation_sid: str, sid: str) -> Message | None:
        return self.messages[conversation_sid].get(sid)

    def receipts_of(self, message_sid: str) -> list[Receipt]:
        return list(self.receipts.get(message_sid, {}).values())

    def message_of(self, receipt: Receipt) -> Message:
        return self.messages[receipt.conversation_sid][receipt.message_sid]

    def mark_read(self, participant: Participant, index: int, when: datetime | None = None) -> bool:
        """Advance a chat participant's read horizon; False when it is already at or past `index`."""
        if participant.last_read_message_index is not None and participant.last_read_message_index >= index:
            return False
        when = when or self.clock()
        participant.last_read_message_index = index
        participant.last_read_timestamp = when
        participant.date_updated = when
        return True
