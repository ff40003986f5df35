"""The emulator's in-memory Conversations data: services, conversations, participants, messages, receipts.

Synchronous and single-threaded (the event loop's thread); never does I/O, never sleeps, never draws delivery
outcomes itself (a `ReceiptPlanner` decides each receipt's path) and never fires webhooks (its callers do).
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Callable
from datetime import datetime

from delivery_gateway.emulator.delivery import SENT, reached_by
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

# Twilio's SID prefixes of the resources the emulator creates.
SERVICE, CONVERSATION, PARTICIPANT, MESSAGE, RECEIPT = "IS", "CH", "MB", "IM", "DY"

# A receipt's path: its initial (status, error_code) followed by the steps the simulator will take.
ReceiptPath = list[tuple[str | None, int | None]]
ReceiptPlanner = Callable[[Participant, Message], ReceiptPath]
# Called with (message, its receipts, announce): `announce` says whether onMessageAdded should fire.
MessageListener = Callable[[Message, list[Receipt], bool], None]
SOURCES = {CHAT: "SDK", SMS: "SMS", WHATSAPP: "WHATSAPP"}
UNSET = object()  # "parameter not given" for updates, where None means "set to null"


def sent_only(participant: Participant, message: Message) -> ReceiptPath:
    """The planner used when no simulator is attached: every receipt starts and stays `sent`."""
    return [(SENT, None)]


class SidFactory:
    """Fresh SIDs (a prefix and 32 hex digits): seeded (reproducible) when the emulator has a seed."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/sids") if seed is not None else None

    def __call__(self, prefix: str) -> str:
        if self._rng is None:
            return prefix + secrets.token_hex(16)
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
        # Participants removed from a conversation: gone from its list, but their receipts stay.
        self.removed_participants: dict[str, dict[str, Participant]] = {}
        self.messages: dict[str, dict[str, Message]] = {}  # conversation sid -> sid -> message (index order)
        self.receipts: dict[str, dict[str, Receipt]] = {}  # message sid -> sid -> receipt
        self.planner: ReceiptPlanner = sent_only
        self.message_listeners: list[MessageListener] = []
        self.default_service = self.create_service("Default Conversations Service")

    # Services and webhook settings.

    def create_service(self, friendly_name: str) -> Service:
        service = Service(sid=self.new_sid(SERVICE), friendly_name=friendly_name, date_created=self.clock())
        self.services[service.sid] = service
        return service

    def webhook_settings(self, service_sid: str | None) -> WebhookSettings:
        """The account-level settings (`service_sid` None) or the service's own, the default service included:
        Twilio keeps the global (account-level) and each service-level configuration apart."""
        if service_sid is None:
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
            sid=self.new_sid(CONVERSATION),
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
        projected_address: str | None = None,
        attributes: str = "{}",
        role_sid: str | None = None,
        date_created: datetime | None = None,
    ) -> Participant:
        """A chat participant (`identity`), a Group MMS one (`identity` and `projected_address`: an SDK
        participant, as in Twilio's spec example `createGmms`) or an SMS/WhatsApp one (`address`, WhatsApp if
        `whatsapp:...`). Creating a participant "joins them with the conversation, and the connected person will
        receive all subsequent messages" (Twilio's Participant resource): no receipt for earlier messages."""
        now = date_created or self.clock()
        binding = None
        if address is not None:
            kind = WHATSAPP if address.startswith(WHATSAPP_PREFIX) else SMS
            binding = MessagingBinding(type=kind, address=address, proxy_address=proxy_address)
        elif projected_address is not None:
            binding = MessagingBinding(type=SMS, projected_address=projected_address)
        participant = Participant(
            sid=self.new_sid(PARTICIPANT),
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

    def find_participant(self, conversation_sid: str, sid_or_identity: str) -> Participant | None:
        """A current participant by SID, or by identity as Twilio's fetch also accepts."""
        participants = self.participants[conversation_sid]
        return participants.get(sid_or_identity) or self.find_participant_by(
            conversation_sid, identity=sid_or_identity, address=None
        )

    def update_participant(
        self,
        participant: Participant,
        *,
        attributes: object = UNSET,
        role_sid: object = UNSET,
        identity: object = UNSET,
        last_read_message_index: object = UNSET,
        last_read_timestamp: object = UNSET,
        when: datetime | None = None,
    ) -> Participant:
        """Change what was given (UNSET leaves a field alone; None clears it). A read horizon may move back."""
        when = when or self.clock()
        if identity is not UNSET:
            participant.identity = identity  # type: ignore[assignment]
        if attributes is not UNSET:
            participant.attributes = attributes  # type: ignore[assignment]
        if role_sid is not UNSET:
            participant.role_sid = role_sid  # type: ignore[assignment]
        if last_read_message_index is not UNSET:
            participant.last_read_message_index = last_read_message_index  # type: ignore[assignment]
            if last_read_timestamp is UNSET:
                last_read_timestamp = when if last_read_message_index is not None else None
        if last_read_timestamp is not UNSET:
            participant.last_read_timestamp = last_read_timestamp  # type: ignore[assignment]
        participant.date_updated = when
        return participant

    def remove_participant(self, participant: Participant, when: datetime | None = None) -> Participant:
        """Take `participant` off the conversation's list. Twilio: "They will receive no new messages after that
        point, but their previous messages will remain in the conversation"; their receipts stay listed."""
        participant.date_removed = when or self.clock()
        del self.participants[participant.conversation_sid][participant.sid]
        self.removed_participants.setdefault(participant.conversation_sid, {})[participant.sid] = participant
        return participant

    def mark_read(self, participant: Participant, index: int, when: datetime | None = None) -> bool:
        """Advance a chat participant's read horizon to `index`; False when it is already at or past it."""
        if participant.last_read_message_index is not None and participant.last_read_message_index >= index:
            return False
        self.update_participant(participant, last_read_message_index=index, when=when)
        return True

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
        """Append a message and one receipt per non-chat participant present now, other than the author.

        Each receipt's path comes from `self.planner`. With `notify`, listeners (the simulator) hear of it;
        with `announce` too, they fire onMessageAdded. `source` defaults to the author's channel (SDK for
        chat, SMS, WHATSAPP), or API for an author who is no participant.
        """
        conversation = self.conversations[conversation_sid]
        now = date_created or self.clock()
        author_participant = self.find_participant_by(conversation_sid, identity=author, address=author)
        message = Message(
            sid=self.new_sid(MESSAGE),
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
        conversation.next_index += 1  # never reused: after a delete, indices skip numbers
        conversation.date_updated = now
        self.messages[conversation_sid][message.sid] = message
        receipts = []
        for participant in self.participants[conversation_sid].values():
            # Twilio: "Messages sent to Chat Participants do not appear in the delivery_receipts sub-resource."
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
        return Receipt(
            sid=self.new_sid(RECEIPT),
            conversation_sid=message.conversation_sid,
            message_sid=message.sid,
            participant_sid=participant.sid,
            channel_message_sid=self.new_sid(channel_prefix),
            status=status,
            error_code=error_code,
            date_created=now,
            date_updated=None,  # seed 002: "null if the delivery receipt has not been updated"
            seq=next(self._seq),
            reached=set(reached_by(status)),
            planned=planned,
        )

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

    def delete_message(self, message: Message) -> Message:
        """Remove a message and its receipts. Its index is never given again, so later indices skip it
        (Twilio's spec: "Indices may skip numbers, but will always be in order of when the message was received")."""
        del self.messages[message.conversation_sid][message.sid]
        self.receipts.pop(message.sid, None)
        return message

    def find_message(self, conversation_sid: str, sid: str) -> Message | None:
        return self.messages[conversation_sid].get(sid)

    def receipts_of(self, message_sid: str) -> list[Receipt]:
        return list(self.receipts.get(message_sid, {}).values())
