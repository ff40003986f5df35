"""Event sequences for the ledger tests: receipts with services, channels, error codes and Twilio times.

Test helper only. Everything is derived from a seed, so two engines can be fed the very same sequence.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger.events import DeliveryEvent, LedgerEvent, MessageEvent, ReadHorizonEvent

SERVICE_A = "IS" + "a" * 32
SERVICE_B = "IS" + "b" * 32
T0 = datetime(2026, 3, 1, tzinfo=UTC)

# A receipt's possible lives (each a chain of statuses at increasing times), and the codes failures carry.
LIVES = [
    ["sent"],
    ["sent", "delivered"],
    ["sent", "delivered", "read"],
    ["failed"],
    ["sent", "undelivered"],
    ["sent", "delivered", "failed"],
]
ERROR_CODES = [30003, 30005, 30006, 30007, 30008, 63016]
CHANNEL_PREFIX = {"sms": "SM", "whatsapp": "WA", "other": "XX"}


def sid(prefix: str, *parts: object) -> str:
    """A deterministic SID: `prefix` + 32 hex digits derived from `parts`."""
    return prefix + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def receipt_event(
    conversation: str,
    message: str,
    receipt: str,
    status: str,
    at: datetime,
    *,
    service: str = SERVICE_A,
    channel: str = "sms",
    error_code: int | None = None,
    participant: str | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        conversation_sid=conversation,
        message_sid=message,
        receipt_sid=receipt,
        status=DeliveryStatus(status),
        participant_sid=participant or sid("MB", receipt),
        channel_message_sid=sid(CHANNEL_PREFIX[channel], receipt),
        error_code=error_code,
        date_created=iso(at),
        date_updated=iso(at),
        service_sid=service,
        account_sid="AC" + "0" * 32,
    )


def storm(seed: int, receipts: int, *, start: datetime = T0, span: timedelta = timedelta(days=3)) -> list[LedgerEvent]:
    """Every status of `receipts` receipts (two services, three channels, a few conversations), in time order,
    plus read horizons and message events."""
    rng = random.Random(seed)
    events: list[LedgerEvent] = []
    for n in range(receipts):
        service = SERVICE_A if n % 4 else SERVICE_B
        conversation = sid("CH", seed, n % 5)
        message = sid("IM", seed, n // 2)
        receipt = sid("DY", seed, n)
        channel = rng.choice(["sms", "sms", "whatsapp", "other"])
        life = rng.choice(LIVES)
        code = rng.choice(ERROR_CODES)
        at = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
        for status in life:
            error = code if status in ("failed", "undelivered") else None
            events.append(
                receipt_event(
                    conversation, message, receipt, status, at, service=service, channel=channel, error_code=error
                )
            )
            at += timedelta(seconds=rng.randrange(1, 900))
        if n % 7 == 0:
            events.append(
                MessageEvent(
                    action="added", conversation_sid=conversation, message_sid=message, index=n, service_sid=service
                )
            )
        if n % 5 == 0:
            events.append(
                ReadHorizonEvent(
                    conversation_sid=conversation,
                    participant_sid=sid("MB", seed, "reader", n % 3),
                    last_read_message_index=n,
                    service_sid=service,
                )
            )
    return events


def duplicated_and_shuffled(events: list[LedgerEvent], seed: int, *, rate: float = 0.3) -> list[LedgerEvent]:
    rng = random.Random(seed)
    out = list(events) + [e for e in events if rng.random() < rate]
    rng.shuffle(out)
    return out
