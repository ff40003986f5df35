"""Moves receipts along realistic delivery paths over time and advances chat read horizons, firing webhooks.

Owns every random delivery outcome (drawn from Random(seed) when a message is created, so runs repeat); never
serves HTTP and never blocks: each message's steps run in one asyncio task, or all at once via `advance_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from delivery_gateway.emulator.config import EmulatorConfig
from delivery_gateway.emulator.delivery import (
    DELIVERED,
    FAILED,
    FAILED_CODES,
    QUEUED,
    READ,
    SENT,
    UNDELIVERED,
    UNDELIVERED_CODES,
)
from delivery_gateway.emulator.models import CHAT, WHATSAPP, Message, Participant, Receipt
from delivery_gateway.emulator.store import ConversationStore, ReceiptPath
from delivery_gateway.emulator.webhook_events import (
    ON_DELIVERY_UPDATED,
    ON_MESSAGE_ADDED,
    ON_PARTICIPANT_UPDATED,
    delivery_params,
    message_added_params,
    participant_updated_params,
    sdk,
)
from delivery_gateway.emulator.webhooks import WebhookDispatcher


@dataclass
class TimedStep:
    """Something the simulator does `at` seconds after the message was created."""

    at: float
    apply: Callable[[], None]


class DeliverySimulator:
    def __init__(self, config: EmulatorConfig, store: ConversationStore, webhooks: WebhookDispatcher) -> None:
        self.config = config
        self.store = store
        self.webhooks = webhooks
        self.reseed(config.seed)
        self._pending: dict[str, list[TimedStep]] = {}  # message sid -> steps not yet taken, in time order
        self._tasks: dict[str, asyncio.Task] = {}
        store.planner = self.plan_receipt
        store.message_listeners.append(self.on_message_created)

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(f"{seed}/delivery") if seed is not None else random.Random()

    # Planning (synchronous, at message creation: the draws happen in a reproducible order).

    def plan_receipt(self, participant: Participant, message: Message) -> ReceiptPath:
        """The receipt's whole path: initial status, then every later one."""
        channel = participant.channel
        if self._draw(self.config.null_status_rate):
            return [(None, None)]  # seed 002: a receipt's status may be null; this one stays so
        if self._rng.random() < self.config.failure_rate:
            if self._rng.random() < 0.5:
                path: ReceiptPath = [(FAILED, self._rng.choice(FAILED_CODES[channel]))]
            else:
                path = [(SENT, None), (UNDELIVERED, self._rng.choice(UNDELIVERED_CODES[channel]))]
        else:
            path = [(SENT, None), (DELIVERED, None)]
            if channel == WHATSAPP and self._rng.random() < self.config.whatsapp_read_rate:
                path.append((READ, None))
        if self._draw(self.config.unknown_status_rate):
            path.insert(0, (self.config.unknown_status, None))
        if self._draw(self.config.queued_rate):
            path.insert(0, (QUEUED, None))
        return path

    def _draw(self, rate: float) -> bool:
        """One draw, made only when the knob is set, so configs without it keep their exact sequences."""
        return rate > 0 and self._rng.random() < rate

    def on_message_created(self, message: Message, receipts: list[Receipt], announce: bool) -> None:
        """Fire onMessageAdded if `announce` and each receipt's first onDeliveryUpdated; then schedule."""
        service_sid = self.store.conversations[message.conversation_sid].service_sid
        if announce:
            params = message_added_params(self.store, message, sid_key=self.config.webhook_media_sid_key)
            self.webhooks.emit(service_sid, ON_MESSAGE_ADDED, params)
        # Seed 001: onDeliveryUpdated "is executed for every delivery receipt notification received by Twilio",
        # whoever created the message (no X-Twilio-Webhook-Enabled needed): one per status a receipt takes.
        for receipt in receipts:
            self.webhooks.emit(service_sid, ON_DELIVERY_UPDATED, delivery_params(self.store, receipt))
        steps: list[TimedStep] = []
        for receipt in receipts:
            at = 0.0
            for _ in receipt.planned:
                at += self._delay()
                steps.append(TimedStep(at, partial(self._advance_receipt, receipt)))
        for participant in self.store.participants[message.conversation_sid].values():
            if participant.channel != CHAT or participant.sid == message.participant_sid:
                continue
            if self._rng.random() < self.config.chat_read_rate:
                at = self._delay()
                steps.append(TimedStep(at, partial(self._mark_read, participant, message.index)))
        if not steps:
            return
        steps.sort(key=lambda step: step.at)
        self._pending[message.sid] = steps
        if self.config.simulate:
            with contextlib.suppress(RuntimeError):  # no running loop: steps wait for advance_all()
                self._tasks[message.sid] = asyncio.get_running_loop().create_task(
                    self._drive(message.sid), name=f"emulator-delivery-{message.sid}"
                )

    def _delay(self) -> float:
        return self.config.step_delay * self._rng.uniform(0.5, 1.5)

    # Applying steps.

    def _advance_receipt(self, receipt: Receipt) -> None:
        if not receipt.planned or self.store.find_message(receipt.conversation_sid, receipt.message_sid) is None:
            return  # nothing left, or the message was deleted
        status, error_code = receipt.planned.pop(0)
        receipt.advance(status, error_code, self.store.clock())
        service_sid = self.store.conversations[receipt.conversation_sid].service_sid
        self.webhooks.emit(service_sid, ON_DELIVERY_UPDATED, delivery_params(self.store, receipt))

    def _mark_read(self, participant: Participant, index: int) -> None:
        if participant.date_removed is None and self.store.mark_read(participant, index):
            service_sid = self.store.conversations[participant.conversation_sid].service_sid
            params = participant_updated_params(self.store, participant, sdk(participant.identity))
            self.webhooks.emit(service_sid, ON_PARTICIPANT_UPDATED, params)

    async def _drive(self, message_sid: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        steps = self._pending.get(message_sid, [])
        try:
            while steps:
                step = steps[0]
                wait = started + step.at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if steps and steps[0] is step:
                    steps.pop(0)
                    step.apply()
        finally:
            if not steps:
                self._pending.pop(message_sid, None)
            self._tasks.pop(message_sid, None)

    # Control from tests and benchmarks.

    @property
    def pending_steps(self) -> int:
        return sum(len(steps) for steps in self._pending.values())

    async def advance_all(self, *, flush_webhooks: bool = True) -> int:
        """Take every pending step now, in creation order; returns how many. Then wait for the webhooks."""
        taken = 0
        for message_sid in list(self._pending):
            task = self._tasks.pop(message_sid, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for step in self._pending.pop(message_sid, []):
                step.apply()
                taken += 1
        if flush_webhooks:
            await self.webhooks.drain()
        return taken

    async def idle(self) -> None:
        """Wait until every running delivery task has finished and every webhook has been posted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        await self.webhooks.drain()

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
