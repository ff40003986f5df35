"""GraphQL types of delivery state: receipts, recipients, the delivery summary, errors, receipt history, and the
enums of delivery rules.

Declarative: every value is computed by delivery/ (the pure rules) or delivery/resolvers.py; enums wrap the
Python enums the rules compute with.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.types import Info

from delivery_gateway.delivery import channels, recipients
from delivery_gateway.delivery.channels import Channel
from delivery_gateway.delivery.error_codes import describe_error_code
from delivery_gateway.delivery.recipients import RecipientSource, RecipientStatus
from delivery_gateway.delivery.ticks import TICKS_RULE, Ticks
from delivery_gateway.graphql.delivery import resolvers
from delivery_gateway.graphql.participant.resolvers import participant_by_sid
from delivery_gateway.graphql.participant.types import Participant
from delivery_gateway.graphql.values import Deferred, attribute
from delivery_gateway.kernel.records import DeliveryStatus, ParticipantRecord, ReceiptRecord
from delivery_gateway.ledger import HistoryEntry

if TYPE_CHECKING:
    from delivery_gateway.graphql.context import RequestContext

# GraphQL enums are the rules' own Python enums, registered with a name and a description.
strawberry.enum(DeliveryStatus, name="DeliveryStatus", description="A delivery receipt's status, as Twilio reports it.")
strawberry.enum(
    RecipientStatus,
    name="RecipientStatus",
    description="A recipient's state for one message; PENDING when a non-chat recipient has no receipt yet, or its "
    "receipt has no delivery status yet (null, queued, or a status this gateway does not know).",
)
strawberry.enum(RecipientSource, name="RecipientSource", description="Where a recipient's status comes from.")
strawberry.enum(Ticks, name="Ticks", description="The one state a chat UI draws. " + TICKS_RULE)

__all__ = [
    "DeliveryAmount",
    "DeliveryError",
    "DeliveryReceipt",
    "DeliveryStatus",
    "DeliverySummary",
    "ParticipantTypes",
    "ReceiptStatusChange",
    "Recipient",
    "RecipientSource",
    "RecipientStatus",
    "Ticks",
]


@strawberry.enum(description="Twilio's per-status amount in a message's delivery summary.")
class DeliveryAmount(StrEnum):  # a str enum: hashed as its text when served (five per message)
    ALL = "all"
    SOME = "some"
    NONE = "none"


def _amount(value: Any) -> DeliveryAmount:
    try:
        return DeliveryAmount(str(value).lower())
    except ValueError:
        return DeliveryAmount.NONE


@strawberry.type(description="A Twilio delivery error code, explained from the gateway's table of Twilio errors.")
class DeliveryError:
    code: int
    name: str
    description: str
    retryable: bool = strawberry.field(description="Whether sending the message again may succeed.")

    @classmethod
    def from_code(cls, code: int | None) -> DeliveryError | None:
        entry = describe_error_code(code)
        if entry is None:
            return None
        return cls(code=entry.code, name=entry.name, description=entry.description, retryable=entry.retryable)


def _share(status: str, passes: str) -> str:
    return (
        f"ALL, SOME or NONE of the message's receipts have been {status}: {passes} Twilio's summary or a receipt "
        "the gateway saw says so (never goes back)."
    )


@strawberry.type(
    description="A message's delivery summary: Twilio's `Message.delivery` (per status, whether all, some or none "
    "of the message's receipts reached it), kept current by the gateway. A read straight from Twilio serves "
    "Twilio's summary; after each delivery webhook the gateway raises it, per status, to what the receipts and "
    "the statuses its ledger recorded show (a status a receipt reached is never un-reached), so a cached read "
    "and a fresh read of Twilio agree. Chat participants have no receipts and are never counted."
)
class DeliverySummary:
    total: int = strawberry.field(
        description="How many receipts the message has: one per recipient reached through a binding (SMS, "
        "WhatsApp...), including recipients whose status is still null or queued."
    )
    sent: DeliveryAmount = strawberry.field(
        description=_share("sent", "a receipt delivered, read or undelivered was sent; a failed one only when")
    )
    delivered: DeliveryAmount = strawberry.field(
        description=_share("delivered", "a read receipt was delivered; any other only when")
    )
    read: DeliveryAmount = strawberry.field(description=_share("read (WhatsApp and other OTT channels)", "when"))
    failed: DeliveryAmount = strawberry.field(
        description=_share("failed (Twilio could not send them; see the receipts' `errorCode`)", "when")
    )
    undelivered: DeliveryAmount = strawberry.field(
        description=_share("undelivered (sent, then refused by the carrier or WhatsApp)", "when")
    )

    @classmethod
    def from_twilio(cls, delivery: dict[str, Any] | None) -> DeliverySummary | None:
        if not delivery:
            return None
        return cls(
            total=int(delivery.get("total") or 0),
            sent=_amount(delivery.get("sent")),
            delivered=_amount(delivery.get("delivered")),
            read=_amount(delivery.get("read")),
            failed=_amount(delivery.get("failed")),
            undelivered=_amount(delivery.get("undelivered")),
        )


@strawberry.type(description="One status a delivery receipt took, as the gateway's ledger recorded it.")
class ReceiptStatusChange:
    status: DeliveryStatus
    error_code: int | None
    at: datetime | None = strawberry.field(description="When Twilio says the receipt reached this status.")
    source: str = strawberry.field(
        description='How the gateway learnt it: "webhook" (Twilio\'s onDeliveryUpdated) or "reconcile" (re-read '
        "from Twilio's REST API because no webhook had brought it)."
    )
    changed_status: bool = strawberry.field(
        description="False for a late, older status: kept in history without changing the receipt."
    )
    cursor: str | None = strawberry.field(description="The ledger cursor of the change, when it changed status.")

    @classmethod
    def from_entry(cls, entry: HistoryEntry) -> ReceiptStatusChange:
        return cls(
            status=entry.status,
            error_code=entry.error_code,
            at=datetime.fromisoformat(entry.at) if entry.at else None,
            source=entry.source,
            changed_status=entry.recorded_seq > 0,
            cursor=str(entry.recorded_seq) if entry.recorded_seq else None,
        )


@strawberry.type(description="One Twilio delivery receipt: one message to one non-chat participant.")
class DeliveryReceipt:
    sid: str
    message_sid: str
    conversation_sid: str
    participant_sid: str | None
    status: DeliveryStatus | None = strawberry.field(
        description="Null while Twilio reports no status, or a status this gateway does not know yet "
        "(`reportedStatus` has it); the recipient is then PENDING."
    )
    reported_status: str | None = strawberry.field(
        description="The status exactly as Twilio reported it, including statuses not in DeliveryStatus."
    )
    error_code: int | None = strawberry.field(description="Twilio's error code for failed/undelivered receipts.")
    channel_message_sid: str | None = strawberry.field(description="The SMS/WhatsApp message SID on the channel.")
    date_created: datetime | None
    date_updated: datetime | None
    error: DeliveryError | None = strawberry.field(
        description="The error behind `errorCode`: name, description, whether a retry may help."
    )
    channel: Channel = strawberry.field(
        description="SMS, WHATSAPP... from the participant's binding, else the channel SID prefix."
    )
    participant: Participant | None = strawberry.field(
        description="The participant the receipt is for (`removed` when they have left since)."
    )
    record: strawberry.Private[ReceiptRecord]
    service_scope: strawberry.Private[str | None]

    @classmethod
    def from_record(
        cls,
        record: ReceiptRecord,
        service_scope: str | None,
        context: RequestContext,
        participants: ParticipantTypes | None = None,
    ) -> DeliveryReceipt:
        """The GraphQL receipt. With `participants` (its conversation's, as a page loaded them) every field is a
        plain value; without, `channel` and `participant` look the participant up when read. A participant Twilio
        no longer lists is shown as removed (`recipients.removed_participant`), with the receipt's channel."""
        channel: Channel | Deferred[Channel]
        participant: Participant | Deferred[Participant | None] | None
        if participants is not None:
            bound, removed = _receipt_participant(record, participants.record(record.participant_sid))
            channel = channels.receipt_channel(record, None if removed else bound)
            participant = participants.get(bound, removed=removed, channel=channel)
        else:

            async def lookup() -> tuple[ParticipantRecord | None, bool]:
                found = await participant_by_sid(
                    context, service_scope, record.conversation_sid, record.participant_sid
                )
                return _receipt_participant(record, found)

            async def receipt_channel() -> Channel:
                found, removed = await lookup()
                return channels.receipt_channel(record, None if removed else found)

            async def receipt_participant() -> Participant | None:
                found, removed = await lookup()
                if found is None:
                    return None
                channel = channels.receipt_channel(record, None) if removed else None
                return Participant.from_record(found, service_scope, removed=removed, channel=channel)

            channel, participant = Deferred(receipt_channel), Deferred(receipt_participant)
        return cls(
            sid=record.sid,
            message_sid=record.message_sid,
            conversation_sid=record.conversation_sid,
            participant_sid=record.participant_sid,
            status=record.status,
            reported_status=record.reported_status,
            error_code=record.error_code,
            channel_message_sid=record.channel_message_sid,
            date_created=record.date_created,
            date_updated=record.date_updated,
            error=DeliveryError.from_code(record.error_code),
            channel=attribute(channel),
            participant=attribute(participant),
            record=record,
            service_scope=service_scope,
        )

    @strawberry.field(
        description=(
            "Every status change the gateway's delivery ledger recorded for this receipt, oldest first, including"
            " late older statuses that did not change it. Twilio keeps only the latest status: history covers what"
            " reached the gateway's webhook."
        )
    )
    async def history(self, info: Info) -> list[ReceiptStatusChange] | None:
        return [ReceiptStatusChange.from_entry(e) for e in await resolvers.receipt_history(info.context, self.sid)]


@strawberry.type(
    description="One participant the message was sent to, whatever the channel: every participant but the author "
    "who was in the conversation when the message was created, and anyone holding a receipt for it (a participant "
    "removed since is still a recipient, with `participant.removed` true). Participants who joined later are not."
)
class Recipient:
    participant: Participant
    channel: Channel
    status: RecipientStatus
    source: RecipientSource = strawberry.field(
        description="RECEIPT for SMS/WhatsApp (Twilio receipts), READ_HORIZON for chat participants."
    )
    error_code: int | None
    updated_at: datetime | None
    receipt: DeliveryReceipt | None
    error: DeliveryError | None = strawberry.field(description="The error behind `errorCode`.")

    @classmethod
    def from_state(
        cls, state: recipients.RecipientState, participants: ParticipantTypes, receipts: dict[str, DeliveryReceipt]
    ) -> Recipient:
        """The GraphQL recipient; its receipt is the message's own `DeliveryReceipt` object (`receipts` by SID)."""
        receipt = state.receipt
        return cls(
            participant=participants.of(state.participant, removed=state.removed, channel=state.channel),
            channel=state.channel,
            status=state.status,
            source=state.source,
            error_code=state.error_code,
            updated_at=state.updated_at,
            receipt=receipts.get(receipt.sid) if receipt else None,
            error=DeliveryError.from_code(state.error_code),
        )


def _receipt_participant(
    receipt: ReceiptRecord, found: ParticipantRecord | None
) -> tuple[ParticipantRecord | None, bool]:
    """(the receipt's participant, whether it was removed: Twilio lists it no more, the receipt still names it)."""
    if found is None and receipt.participant_sid:
        return recipients.removed_participant(receipt, receipt.participant_sid), True
    return found, False


class ParticipantTypes:
    """The GraphQL Participant of each participant record of one conversation, built once and shared by every
    receipt and recipient of a page (the same participant is in every message's recipients)."""

    __slots__ = ("_by_sid", "_types", "service_scope")

    def __init__(self, records: Iterable[ParticipantRecord], service_scope: str | None) -> None:
        self.service_scope = service_scope
        self._by_sid = {p.sid: p for p in records}
        self._types: dict[str, Participant] = {}

    def record(self, sid: str | None) -> ParticipantRecord | None:
        return self._by_sid.get(sid) if sid else None

    def of(self, record: ParticipantRecord, *, removed: bool = False, channel: Channel | None = None) -> Participant:
        """The shared Participant of a listed participant; a removed one (known from a receipt alone, with that
        receipt's `channel`) gets its own."""
        if removed:
            return Participant.from_record(record, self.service_scope, removed=True, channel=channel)
        found = self._types.get(record.sid)
        if found is None or found.record is not record:
            found = self._types[record.sid] = Participant.from_record(record, self.service_scope)
        return found

    def get(
        self, record: ParticipantRecord | None, *, removed: bool = False, channel: Channel | None = None
    ) -> Participant | None:
        return self.of(record, removed=removed, channel=channel) if record is not None else None
