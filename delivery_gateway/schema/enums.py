"""GraphQL enums of the API, declared over the plain Python enums the resolvers compute with.

Declares only; never holds logic (the rules behind each value live in delivery/).
"""

from __future__ import annotations

from enum import Enum

import strawberry

from delivery_gateway.delivery.channels import Channel as _Channel
from delivery_gateway.delivery.recipients import RecipientSource as _RecipientSource
from delivery_gateway.delivery.recipients import RecipientStatus as _RecipientStatus
from delivery_gateway.delivery.ticks import TICKS_RULE
from delivery_gateway.delivery.ticks import Ticks as _Ticks
from delivery_gateway.kernel.records import DeliveryStatus as _DeliveryStatus

Channel = strawberry.enum(
    _Channel,
    name="Channel",
    description="How a participant is reached: the Conversations SDK (CHAT) or a binding.",
)
DeliveryStatus = strawberry.enum(
    _DeliveryStatus, name="DeliveryStatus", description="A delivery receipt's status, as Twilio reports it."
)
RecipientStatus = strawberry.enum(
    _RecipientStatus,
    name="RecipientStatus",
    description="A recipient's state for one message; PENDING when a non-chat recipient has no receipt yet.",
)
RecipientSource = strawberry.enum(
    _RecipientSource, name="RecipientSource", description="Where a recipient's status comes from."
)
Ticks = strawberry.enum(_Ticks, name="Ticks", description="The one state a chat UI draws. " + TICKS_RULE)


@strawberry.enum(description="Twilio's per-status amount in a message's delivery summary.")
class DeliveryAmount(Enum):
    ALL = "all"
    SOME = "some"
    NONE = "none"


@strawberry.enum(description="A conversation's state.")
class ConversationState(Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"
