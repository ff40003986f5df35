"""Live demo traffic: agents keep writing in the seeded conversations, so the demo has deliveries to watch.

Only creates messages through the store (as a REST create would); never touches receipts itself: the delivery
simulator moves them and fires the webhooks, exactly as for any other message.
"""

from __future__ import annotations

import asyncio
import random

from delivery_gateway.emulator.app import EmulatorState
from delivery_gateway.emulator.models import CHAT

LINES = (
    "Your order has shipped and should arrive tomorrow.",
    "Can you confirm the delivery address?",
    "Thanks! I have updated your booking.",
    "Your verification code is 482913.",
    "We are sorry for the delay; a new parcel is on its way.",
    "Reminder: your appointment is today at 3pm.",
)


class LiveTraffic:
    """Every `interval` seconds (with jitter), a chat participant writes to a conversation with SMS/WhatsApp members."""

    def __init__(self, state: EmulatorState, *, interval: float = 4.0, seed: int | None = None) -> None:
        self.state = state
        self.interval = interval
        self._rng = random.Random(seed)
        self.sent = 0

    def _candidates(self) -> list[tuple[str, str]]:
        """(conversation sid, chat author identity) for every conversation that has someone to deliver to."""
        store = self.state.store
        found = []
        for conversation_sid, participants in store.participants.items():
            members = list(participants.values())
            authors = [p.identity for p in members if p.channel == CHAT and p.identity]
            if authors and any(p.channel != CHAT for p in members):
                found.append((conversation_sid, authors[0]))
        return sorted(found)

    def send_one(self) -> str | None:
        candidates = self._candidates()
        if not candidates:
            return None
        conversation_sid, author = self._rng.choice(candidates)
        message, _ = self.state.store.create_message(conversation_sid, author=author, body=self._rng.choice(LINES))
        self.sent += 1
        return message.sid

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * self._rng.uniform(0.5, 1.5))
            self.send_one()
