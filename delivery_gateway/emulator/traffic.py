"""Live demo traffic: agents keep writing, people read (and mark unread), and now and then someone joins late.

Acts only as Twilio's users would: messages through the store (as a REST create would), read horizons as an SDK
user moves them (announced with onParticipantUpdated), late joiners as a backend adding them over REST without
`X-Twilio-Webhook-Enabled` (so no webhook). Never touches receipts: the delivery simulator moves them.
"""

from __future__ import annotations

import asyncio
import random

from delivery_gateway.emulator.app import EmulatorState
from delivery_gateway.emulator.models import CHAT, Participant
from delivery_gateway.emulator.webhook_events import ON_PARTICIPANT_UPDATED, participant_updated_params, sdk

LINES = (
    "Your order has shipped and should arrive tomorrow.",
    "Can you confirm the delivery address?",
    "Thanks! I have updated your booking.",
    "Your verification code is 482913.",
    "We are sorry for the delay; a new parcel is on its way.",
    "Reminder: your appointment is today at 3pm.",
)
SMS_PROXY = "+15017122661"


class LiveTraffic:
    """Every `interval` seconds (with jitter) one tick: a chat participant writes to a conversation with SMS or
    WhatsApp members; with `read_rate` a chat participant moves their read horizon, back by a few messages with
    `unread_rate` (marking them unread); with `late_join_rate` an SMS participant joins a conversation late (at
    most `max_late_joiners` per conversation), receiving only the messages written after it joined."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        interval: float = 4.0,
        seed: int | None = None,
        read_rate: float = 0.6,
        unread_rate: float = 0.15,
        late_join_rate: float = 0.05,
        max_late_joiners: int = 2,
    ) -> None:
        self.state = state
        self.interval = interval
        self.read_rate = read_rate
        self.unread_rate = unread_rate
        self.late_join_rate = late_join_rate
        self.max_late_joiners = max_late_joiners
        self._rng = random.Random(seed)
        self._late: dict[str, list[str]] = {}  # conversation sid -> participant sids that joined late
        self.sent = 0
        self.horizons_moved = 0
        self.joined = 0

    def _candidates(self) -> list[tuple[str, list[str]]]:
        """(conversation sid, chat identities able to write) for every conversation with someone to deliver to."""
        store = self.state.store
        found = []
        for conversation_sid, participants in store.participants.items():
            members = list(participants.values())
            authors = [p.identity for p in members if p.channel == CHAT and p.identity and p.binding is None]
            if authors and any(p.channel != CHAT for p in members):
                found.append((conversation_sid, authors))
        return sorted(found)

    def send_one(self) -> str | None:
        candidates = self._candidates()
        if not candidates:
            return None
        conversation_sid, authors = self._rng.choice(candidates)
        author = self._rng.choice(authors)
        message, _ = self.state.store.create_message(conversation_sid, author=author, body=self._rng.choice(LINES))
        self.sent += 1
        return message.sid

    def move_horizon(self) -> Participant | None:
        """A chat participant reads up to the latest message, or (`unread_rate`) marks the last few unread, as the
        Conversations SDK lets a user do; Twilio then posts onParticipantUpdated with Source SDK."""
        store = self.state.store
        readers = [
            p
            for sid, participants in sorted(store.participants.items())
            if store.messages[sid]
            for p in participants.values()
            if p.channel == CHAT
        ]
        if not readers:
            return None
        participant = self._rng.choice(readers)
        indices = [m.index for m in store.messages[participant.conversation_sid].values()]
        if self._rng.random() < self.unread_rate and len(indices) > 1:
            target: int | None = indices[max(0, len(indices) - 1 - self._rng.randint(1, 3))]
        else:
            target = indices[-1]
        if target == participant.last_read_message_index:
            return None
        store.update_participant(participant, last_read_message_index=target)
        service_sid = store.conversations[participant.conversation_sid].service_sid
        params = participant_updated_params(store, participant, sdk(participant.identity))
        self.state.webhooks.emit(service_sid, ON_PARTICIPANT_UPDATED, params)
        self.horizons_moved += 1
        return participant

    def join_late(self) -> Participant | None:
        """An SMS participant joins a conversation that already has messages: it gets receipts for what is written
        from now on and none for what came before (Twilio: it "will receive all subsequent messages")."""
        store = self.state.store
        open_conversations = [
            sid
            for sid, _ in self._candidates()
            if store.messages[sid] and len(self._late.get(sid, [])) < self.max_late_joiners
        ]
        if not open_conversations:
            return None
        conversation_sid = self._rng.choice(open_conversations)
        address = f"+1555888{self._rng.randrange(10_000):04d}"
        if store.find_participant_by(conversation_sid, identity=None, address=address) is not None:
            return None
        participant = store.create_participant(conversation_sid, address=address, proxy_address=SMS_PROXY)
        self._late.setdefault(conversation_sid, []).append(participant.sid)
        self.joined += 1
        return participant

    def tick(self) -> None:
        self.send_one()
        if self._rng.random() < self.read_rate:
            self.move_horizon()
        if self._rng.random() < self.late_join_rate:
            self.join_late()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * self._rng.uniform(0.5, 1.5))
            self.tick()
