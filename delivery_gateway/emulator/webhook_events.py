"""The form parameters of each Conversations post-event webhook, exactly those Twilio documents for the event.

Pure: reads the store's models, returns str->str dicts; never queues or posts anything.

Source of every parameter list: Twilio's "Conversations Webhooks" page
(https://www.twilio.com/docs/conversations/conversations-webhooks), section "Post Action Webhooks request
parameters", plus the parameters it says every request carries: AccountSid, EventType, Source ("SDK or API") and
ClientIdentity ("SDK-originating events only"). onDeliveryUpdated's table is complete on its own (it alone lists
AccountSid) and no Source value fits a carrier's receipt, so it carries none. Parameters whose value is null are
left out, as on Twilio's own posts (a logged onMessageAdded has no MessagingServiceSid although the table lists
it). Dates carry milliseconds, as Twilio's posts do (`DateCreated=2021-08-10T18:00:58.111Z` on a logged
onMessageAdded; `2025-01-01T00:00:00.000Z` throughout the Event Streams schemas of the same events); REST bodies
keep whole seconds. `EventType` is added by the dispatcher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from delivery_gateway.emulator.models import CHAT, Conversation, Message, Participant, Receipt
from delivery_gateway.emulator.store import ConversationStore

ON_CONVERSATION_ADDED = "onConversationAdded"
ON_PARTICIPANT_ADDED = "onParticipantAdded"
ON_PARTICIPANT_UPDATED = "onParticipantUpdated"
ON_PARTICIPANT_REMOVED = "onParticipantRemoved"
ON_MESSAGE_ADDED = "onMessageAdded"
ON_MESSAGE_UPDATED = "onMessageUpdated"
ON_MESSAGE_REMOVED = "onMessageRemoved"
ON_DELIVERY_UPDATED = "onDeliveryUpdated"


@dataclass(frozen=True)
class Origin:
    """Who made the change: Source `API` (REST) or `SDK` (a chat user, named in ClientIdentity), or the
    channel an inbound message came over (SMS, WHATSAPP)."""

    source: str
    client_identity: str | None = None


API = Origin("API")


def sdk(identity: str | None) -> Origin:
    return Origin("SDK", identity)


def iso_ms(value: datetime | None) -> str | None:
    """Twilio's webhook date format: 2021-08-10T18:00:58.111Z."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _form(values: dict[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _common(store: ConversationStore, origin: Origin) -> dict[str, object]:
    return {"AccountSid": store.account_sid, "Source": origin.source, "ClientIdentity": origin.client_identity}


def conversation_added_params(store: ConversationStore, conversation: Conversation, origin: Origin = API) -> dict:
    """onConversationAdded."""
    return _form(
        {
            **_common(store, origin),
            "ConversationSid": conversation.sid,
            "DateCreated": iso_ms(conversation.date_created),
            "DateUpdated": iso_ms(conversation.date_updated),
            "FriendlyName": conversation.friendly_name,
            "UniqueName": conversation.unique_name,
            "Attributes": conversation.attributes,
            "ChatServiceSid": conversation.service_sid,
            "MessagingServiceSid": conversation.messaging_service_sid,
            "State": conversation.state,
        }
    )


def _participant(store: ConversationStore, participant: Participant, origin: Origin) -> dict[str, object]:
    binding = participant.binding
    # "Type of the participant, one of: SMS, CHAT, WHATSAPP"; a Group MMS participant carries its binding's type,
    # as the Event Streams example of participant.added shows ("Type": "SMS" beside an Identity).
    kind = binding.type.upper() if binding else CHAT.upper()
    return {
        **_common(store, origin),
        "ConversationSid": participant.conversation_sid,
        "ParticipantSid": participant.sid,
        "DateCreated": iso_ms(participant.date_created),
        "Identity": participant.identity,
        "RoleSid": participant.role_sid,
        "Attributes": participant.attributes,
        "MessagingBinding.ProxyAddress": binding.proxy_address if binding else None,
        "MessagingBinding.Address": binding.address if binding else None,
        "MessagingBinding.ProjectedAddress": binding.projected_address if binding else None,
        "MessagingBinding.Type": kind,
    }


def participant_added_params(store: ConversationStore, participant: Participant, origin: Origin = API) -> dict:
    """onParticipantAdded: no DateUpdated, no read horizon."""
    return _form(_participant(store, participant, origin))


def participant_updated_params(store: ConversationStore, participant: Participant, origin: Origin = API) -> dict:
    """onParticipantUpdated: DateUpdated and LastReadMessageIndex; the table lists no LastReadTimestamp."""
    return _form(
        {
            **_participant(store, participant, origin),
            "DateUpdated": iso_ms(participant.date_updated),
            "LastReadMessageIndex": participant.last_read_message_index,
        }
    )


def participant_removed_params(store: ConversationStore, participant: Participant, origin: Origin = API) -> dict:
    """onParticipantRemoved: DateUpdated and DateRemoved."""
    return _form(
        {
            **_participant(store, participant, origin),
            "DateUpdated": iso_ms(participant.date_updated),
            "DateRemoved": iso_ms(participant.date_removed),
        }
    )


def media_param(media: list[dict[str, object]] | None, sid_key: str = "Sid") -> str | None:
    """The `Media` parameter: "Stringified JSON array of attached media objects" (Conversations Webhooks).
    Unlike the REST `media` (sid, content_type, filename, size), its objects use Twilio's event spelling:
    Sid (MediaSid in the Event Streams schema: `sid_key`), Filename, ContentType, Size."""
    if not media:
        return None
    return json.dumps(
        [
            {
                sid_key: item.get("sid"),
                "Filename": item.get("filename"),
                "ContentType": item.get("content_type"),
                "Size": item.get("size"),
            }
            for item in media
        ]
    )


def _message(store: ConversationStore, message: Message, origin: Origin, sid_key: str) -> dict[str, object]:
    return {
        **_common(store, origin),
        "ConversationSid": message.conversation_sid,
        "MessageSid": message.sid,
        "Index": message.index,
        "DateCreated": iso_ms(message.date_created),
        "Body": message.body,
        "Author": message.author,
        "ParticipantSid": message.participant_sid,
        "Attributes": message.attributes,
        "Media": media_param(message.media, sid_key),
    }


def message_origin(message: Message) -> Origin:
    """Who added `message`: its author for an SDK (chat) message, else the channel or the API."""
    return sdk(message.author) if message.source == "SDK" else Origin(message.source)


def message_added_params(store: ConversationStore, message: Message, *, sid_key: str = "Sid") -> dict:
    """onMessageAdded: MessagingServiceSid, no DateUpdated."""
    conversation = store.conversations[message.conversation_sid]
    return _form(
        {
            **_message(store, message, message_origin(message), sid_key),
            "MessagingServiceSid": conversation.messaging_service_sid,
        }
    )


def message_updated_params(
    store: ConversationStore, message: Message, origin: Origin = API, *, sid_key: str = "Sid"
) -> dict:
    """onMessageUpdated: DateUpdated."""
    return _form({**_message(store, message, origin, sid_key), "DateUpdated": iso_ms(message.date_updated)})


def message_removed_params(
    store: ConversationStore, message: Message, removed: datetime, origin: Origin = API, *, sid_key: str = "Sid"
) -> dict:
    """onMessageRemoved: DateUpdated and DateRemoved."""
    return _form(
        {
            **_message(store, message, origin, sid_key),
            "DateUpdated": iso_ms(message.date_updated),
            "DateRemoved": iso_ms(removed),
        }
    )


def delivery_params(store: ConversationStore, receipt: Receipt) -> dict:
    """onDeliveryUpdated: the receipt as the REST resource has it. Status is left out while it is null (seed
    002: a status may be null); ErrorCode while there is no error; DateUpdated until the receipt is updated."""
    conversation = store.conversations[receipt.conversation_sid]
    return _form(
        {
            "AccountSid": store.account_sid,
            "ConversationSid": conversation.sid,
            "ChatServiceSid": conversation.service_sid,
            "MessageSid": receipt.message_sid,
            "DeliveryReceiptSid": receipt.sid,
            "ChannelMessageSid": receipt.channel_message_sid,
            "ParticipantSid": receipt.participant_sid,
            "Status": receipt.status,
            "ErrorCode": receipt.error_code,
            "DateCreated": iso_ms(receipt.date_created),
            "DateUpdated": iso_ms(receipt.date_updated),
        }
    )
