"""The one tick state a chat UI draws for a message, computed across every recipient, chat and SMS alike.

Pure: never performs I/O. `TICKS_RULE` is the rule in words; the GraphQL schema publishes it verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from delivery_gateway.delivery.recipients import RecipientState, RecipientStatus


class Ticks(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


TICKS_RULE = (
    "FAILED as soon as any recipient failed or was undelivered (a partial failure is never hidden behind the "
    "others' success); otherwise the lowest state every recipient has reached, PENDING < SENT < DELIVERED < "
    "READ, as WhatsApp groups draw ticks: SENT, DELIVERED and READ only once every recipient has reached it. "
    "Chat participants count as DELIVERED once the message exists and READ once their read horizon "
    "(lastReadMessageIndex) covers it; SMS recipients never go beyond DELIVERED (SMS has no read receipts); "
    "a non-chat recipient without a receipt yet, or whose receipt has no delivery status yet (null, queued, or a "
    "status Twilio added since), is PENDING. Recipients are the participants the message was sent to (present "
    "when it was created, or holding a receipt for it). A message with no recipient besides its author is SENT."
)

# How far a recipient got, for the "lowest state every recipient has reached" part of the rule.
_TICK_ORDER = {
    RecipientStatus.PENDING: 0,
    RecipientStatus.SENT: 1,
    RecipientStatus.DELIVERED: 2,
    RecipientStatus.READ: 3,
}


def ticks_for(states: Iterable[RecipientState]) -> Ticks:
    """The single tick state a chat UI draws; the rule is `TICKS_RULE`."""
    statuses = [state.status for state in states]
    if not statuses:
        return Ticks.SENT
    if any(s in (RecipientStatus.FAILED, RecipientStatus.UNDELIVERED) for s in statuses):
        return Ticks.FAILED
    lowest = min(statuses, key=_TICK_ORDER.__getitem__)
    return Ticks(lowest.value)
