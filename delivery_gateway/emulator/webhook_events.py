"""The form parameters of each Conversations post-event webhook, named as Twilio sends them.

Pure: reads the store's models, returns str->str dicts; never queues or posts anything. Null values are
omitted, as Twilio omits them (so ErrorCode appears only on failed/undelivered receipts).
"""

from __future__ import annotations

import json

from delivery_gateway.emulator.models import Conversation, Message, Participant, Receipt
from delivery_gateway.emulator.representations import iso
from delivery_gateway.emulator.store import ConversationStore

ON_CONVERSATION_ADDED = "onConversationAdded"
ON_PARTICIPANT_ADDED = "onParticipantAdded"
ON_PARTICIPANT_UPDATED = "onParticipantUpdated"
ON_MESSAGE_ADDED = "onMessageAdded"
ON_MESSAGE_UPDATED = "onMessageUpdated"
ON_DELIVERY_UPDATED = "onDeliveryUpdated"


def _form(values: dict[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def conversation_params(store: ConversationStore, conversation: Conversation, source: str = "API") -> dict:
    return _form(
        {
            "AccountSid": store.account_sid,
            "ChatServiceSid": conversation.service_sid,
            "ConversationSid": conversation.sid,
            "FriendlyName": conversation.friendly_name,
            "UniqueName": conversation.unique_name,
            "Attributes": conversation.attributes,
            "State": conversation.state,
            "DateCreated": iso(conversation.date_created),
            "Source": source,
        }
    )


def participant_params(store: ConversationStore, participant: Participant, source: str = "API") -> dict:
    conversation = store.conversations[participant.conversation_sid]
    binding = participant.binding
    return _form(
        {
            "AccountSid": store.account_sid,
            "ChatServiceSid": conversation.service_sid,
            "ConversationSid": conversation.sid,
            "ParticipantSid": participant.sid,
            "Identity": participant.identity,
            "MessagingBinding.Type": binding.type if binding else None,
            "MessagingBinding.Address": binding.address if binding else None,
            "MessagingBinding.ProxyAddress": binding.proxy_address if binding else None,
            "RoleSid": participant.role_sid,
            "Attributes": participant.attributes,
            "LastReadMessageIndex": participant.last_read_message_index,
            "LastReadTimestamp": iso(participant.last_read_timestamp),
            "DateCreated": iso(participant.date_created),
            "DateUpdated": iso(participant.date_updated),
            "Source": source,
        }
    )


def message_params(store: ConversationStore, message: Message) -> dict:
    conversation = store.conversations[message.conversation_sid]
    return _form(
        {
            "AccountSid": store.account_sid,
            "ChatServiceSid": conversation.service_sid,
            "ConversationSid": conversation.sid,
            "MessageSid": message.sid,
            "Index": message.index,
            "Author": message.author,
            "Body": message.body,
            "Attributes": message.attributes,
            "Media": json.dumps(message.media) if message.media else None,
            "ParticipantSid": message.participant_sid,
            "DateCreated": iso(message.date_created),
            "DateUpdated": iso(message.date_updated),
            "Source": message.source,
        }
    )


def delivery_params(store: ConversationStore, receipt: Receipt) -> dict:
    conversation = store.conversations[receipt.conversation_sid]
    return _form(
        {
            "AccountSid": store.account_sid,
            "ChatServiceSid": conversation.service_sid,
            "ConversationSid": conversation.sid,
            "MessageSid": receipt.message_sid,
            "DeliveryReceiptSid": receipt.sid,
            "ChannelMessageSid": receipt.channel_message_sid,
            "ParticipantSid": receipt.participant_sid,
            "Status": receipt.status,
            "ErrorCode": receipt.error_code,
            "DateCreated": iso(receipt.date_created),
            "DateUpdated": iso(receipt.date_updated),
            "Source": "API",
        }
    )
