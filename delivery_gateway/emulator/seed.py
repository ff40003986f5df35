"""Demo data for `delivery-gateway demo`: conversations over chat, SMS and WhatsApp in every delivery state,
with what real conversations have: a participant who joined late, one who left, a Group MMS participant who has
never read, a deleted message (its index skipped) and a media message.

Builds straight into the store with settled receipts; never fires webhooks and never schedules the simulator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from delivery_gateway.emulator.delivery import (
    DELIVERED,
    FAILED,
    FAILED_CODES,
    READ,
    SENT,
    UNDELIVERED,
    UNDELIVERED_CODES,
)
from delivery_gateway.emulator.models import WHATSAPP, Message, Participant
from delivery_gateway.emulator.store import ConversationStore, ReceiptPath

SMS_PROXY = "+15017122661"
WHATSAPP_PROXY = "whatsapp:+14155238886"

# Final outcome weights per channel; every outcome also appears at least once in the long conversation.
OUTCOMES = {
    "sms": [(DELIVERED, 70), (SENT, 12), (UNDELIVERED, 10), (FAILED, 8)],
    WHATSAPP: [(READ, 50), (DELIVERED, 25), (SENT, 10), (UNDELIVERED, 8), (FAILED, 7)],
}
PATHS = {
    SENT: [SENT],
    DELIVERED: [SENT, DELIVERED],
    READ: [SENT, DELIVERED, READ],
    FAILED: [FAILED],
    UNDELIVERED: [SENT, UNDELIVERED],
}
# The REST spelling of a message's media, as the spec's message examples show it.
DEMO_IMAGE = {"sid": "ME" + "d" * 32, "size": 42056, "content_type": "image/jpeg", "filename": "parcel.jpg"}
LINES = [
    "Hi! Your order has shipped.",
    "Great, when will it arrive?",
    "Between 2pm and 4pm tomorrow.",
    "Can you leave it with the neighbour?",
    "Sure, noted on the delivery.",
    "Thanks a lot!",
    "Your driver is 10 minutes away.",
    "Delivered, have a nice day.",
]


@dataclass(frozen=True)
class DemoConversation:
    friendly_name: str
    unique_name: str
    chat: tuple[str, ...]
    sms: tuple[str, ...]
    whatsapp: tuple[str, ...]
    messages: int
    service: bool = False  # under the non-default "Support EU" service
    joins_late: tuple[tuple[str, int], ...] = ()  # (SMS/WhatsApp address, message index it joins before)
    leaves: tuple[tuple[str, int], ...] = ()  # (address, message index it is removed before)
    group_mms: tuple[tuple[str, str], ...] = ()  # (identity, projected address): SDK participants, never read
    deleted: tuple[int, ...] = ()  # indices of messages deleted after the fact
    media: tuple[int, ...] = ()  # indices of messages that carry an image


DEMO_CONVERSATIONS = (
    DemoConversation(
        "Order #1042 delivery",
        "order-1042",
        ("agent.alice",),
        ("+15551230001",),
        ("whatsapp:+15551230002",),
        64,
        joins_late=(("+15551230006", 40),),
        deleted=(30,),
        media=(12,),
    ),
    DemoConversation(
        "Appointment reminders",
        "reminders",
        ("agent.bob",),
        ("+15551230003", "+15551230004"),
        (),
        12,
        leaves=(("+15551230004", 7),),
        group_mms=(("front.desk", "+15017122662"),),
    ),
    DemoConversation("WhatsApp onboarding", "onboarding", ("agent.carol",), (), ("whatsapp:+15551230005",), 10),
    DemoConversation("Team room", "team-room", ("agent.alice", "agent.bob"), (), (), 8),
    DemoConversation(
        "EU returns desk",
        "eu-returns",
        ("agent.dora",),
        ("+447700900123",),
        ("whatsapp:+447700900124",),
        15,
        service=True,
    ),
)


class DemoSeeder:
    """Writes DEMO_CONVERSATIONS into a store; outcomes come from Random(seed), so seeded runs repeat."""

    def __init__(self, store: ConversationStore, seed: int | None) -> None:
        self.store = store
        self.rng = random.Random(f"{seed}/seed-data")
        self.forced: dict[str, list[str]] = {
            "sms": [DELIVERED, SENT, UNDELIVERED, FAILED],
            WHATSAPP: [READ, DELIVERED, SENT, UNDELIVERED, FAILED],
        }

    def seed(self) -> None:
        service = self.store.create_service("Support EU")
        start = self.store.clock() - timedelta(days=2)
        for number, demo in enumerate(DEMO_CONVERSATIONS):
            self._conversation(demo, service.sid if demo.service else None, start + timedelta(hours=number))

    def _conversation(self, demo: DemoConversation, service_sid: str | None, start: datetime) -> None:
        store = self.store
        conversation = store.create_conversation(
            service_sid=service_sid,
            friendly_name=demo.friendly_name,
            unique_name=demo.unique_name,
            attributes='{"demo": true}',
            date_created=start,
        )
        chat = [store.create_participant(conversation.sid, identity=i, date_created=start) for i in demo.chat]
        for identity, projected in demo.group_mms:
            store.create_participant(
                conversation.sid, identity=identity, projected_address=projected, date_created=start
            )
        for address in demo.sms:
            store.create_participant(conversation.sid, address=address, proxy_address=SMS_PROXY, date_created=start)
        for address in demo.whatsapp:
            store.create_participant(
                conversation.sid, address=address, proxy_address=WHATSAPP_PROXY, date_created=start
            )
        joins, leaves = dict(demo.joins_late), dict(demo.leaves)
        authors = [a for a in (*demo.chat, *demo.sms, *demo.whatsapp) if a not in joins]
        last: Message | None = None
        messages: dict[int, Message] = {}
        for index in range(demo.messages):
            when = start + timedelta(minutes=3 * index)
            for address, before in joins.items():
                if before == index:
                    proxy = WHATSAPP_PROXY if address.startswith("whatsapp:") else SMS_PROXY
                    store.create_participant(conversation.sid, address=address, proxy_address=proxy, date_created=when)
                    authors.append(address)
            for address, before in leaves.items():
                if before == index:
                    leaving = store.find_participant_by(conversation.sid, identity=None, address=address)
                    store.remove_participant(leaving, when)
                    authors.remove(address)
            author = demo.chat[0] if index % 2 == 0 else authors[index % len(authors)]
            media = [DEMO_IMAGE] if index in demo.media else None
            last = messages[index] = self._message(conversation.sid, author, LINES[index % len(LINES)], when, media)
        for index in demo.deleted:
            store.delete_message(messages[index])
        if last is not None:
            self._read_horizons(chat, last)

    def _message(
        self, conversation_sid: str, author: str, body: str, when: datetime, media: list | None = None
    ) -> Message:
        message, receipts = self.store.create_message(
            conversation_sid, author=author, body=body, media=media, date_created=when, notify=False
        )
        for step, receipt in enumerate(receipts):
            while receipt.planned:
                status, error_code = receipt.planned.pop(0)
                receipt.advance(status, error_code, when + timedelta(seconds=5 + step + 20 * len(receipt.reached)))
        return message

    def plan(self, participant: Participant, message: Message) -> ReceiptPath:
        channel = participant.channel
        forced = self.forced[channel]
        outcome = forced.pop(0) if forced else self._weighted(OUTCOMES[channel])
        codes = {FAILED: FAILED_CODES[channel], UNDELIVERED: UNDELIVERED_CODES[channel]}.get(outcome)
        path: ReceiptPath = [(status, None) for status in PATHS[outcome]]
        if codes:
            path[-1] = (outcome, self.rng.choice(codes))
        return path

    def _weighted(self, weights: list[tuple[str, int]]) -> str:
        outcomes, counts = zip(*weights, strict=True)
        return self.rng.choices(outcomes, weights=counts)[0]

    def _read_horizons(self, chat: list[Participant], last: Message) -> None:
        """Each chat participant has read up to a few messages before the end (Group MMS ones never read)."""
        for lag, participant in enumerate(chat):
            index = max(last.index - 3 * lag, 0)
            self.store.mark_read(participant, index, last.date_created + timedelta(minutes=1))


def seed_demo_data(store: ConversationStore, seed: int | None) -> None:
    """Fill `store` with the demo conversations (one with 64 messages, one under a non-default service)."""
    seeder = DemoSeeder(store, seed)
    previous, store.planner = store.planner, seeder.plan
    try:
        seeder.seed()
    finally:
        store.planner = previous
