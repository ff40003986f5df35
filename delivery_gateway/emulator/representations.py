"""JSON representations of the store's resources, field for field as Twilio's OpenAPI schemas name them.

Pure: builds dicts from models and a `ResourceScope`; never reads the request or changes the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from delivery_gateway.emulator.delivery import delivery_summary
from delivery_gateway.emulator.models import Conversation, Message, Participant, Receipt, Service, WebhookSettings
from delivery_gateway.emulator.spec import resource_fields
from delivery_gateway.emulator.store import ConversationStore

# (resource, service-scoped) -> the component schema whose properties a representation carries.
SCHEMAS = {
    ("conversation", False): "conversations.v1.conversation",
    ("conversation", True): "conversations.v1.service.service_conversation",
    ("message", False): "conversations.v1.conversation.conversation_message",
    ("message", True): "conversations.v1.service.service_conversation.service_conversation_message",
    ("receipt", False): "conversations.v1.conversation.conversation_message.conversation_message_receipt",
    ("receipt", True): (
        "conversations.v1.service.service_conversation.service_conversation_message"
        ".service_conversation_message_receipt"
    ),
    ("participant", False): "conversations.v1.conversation.conversation_participant",
    ("participant", True): "conversations.v1.service.service_conversation.service_conversation_participant",
    ("configuration", False): "conversations.v1.configuration",
    ("service", False): "conversations.v1.service",
    ("webhooks", False): "conversations.v1.configuration.configuration_webhook",
    ("webhooks", True): "conversations.v1.service.service_configuration.service_webhook_configuration",
}


def iso(value: datetime | None) -> str | None:
    """Twilio's REST date format, whole seconds: 2020-03-23T18:45:17Z (every example of the spec and the docs)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True)
class ResourceScope:
    """How representations of one call are rendered: the emulator's own base URL, the service prefix if any,
    and the knob-chosen spelling of "no error" in receipts."""

    base_url: str  # e.g. http://127.0.0.1:8123, from the incoming request
    service_sid: str | None = None  # set for /v1/Services/{ChatServiceSid}/... routes
    error_code_when_none: int | None = None  # config.error_code_when_none

    @property
    def service_scoped(self) -> bool:
        return self.service_sid is not None

    @property
    def root(self) -> str:
        prefix = f"/v1/Services/{self.service_sid}" if self.service_sid else "/v1"
        return self.base_url.rstrip("/") + prefix

    def conversation_url(self, conversation_sid: str) -> str:
        return f"{self.root}/Conversations/{conversation_sid}"


def project(resource: str, scope: ResourceScope, values: dict[str, Any]) -> dict[str, Any]:
    """Exactly the spec's fields of `resource` in this scope, in the spec's order."""
    return {name: values.get(name) for name in resource_fields(SCHEMAS[resource, scope.service_scoped])}


def conversation_json(store: ConversationStore, scope: ResourceScope, conversation: Conversation) -> dict:
    url = scope.conversation_url(conversation.sid)
    return project(
        "conversation",
        scope,
        {
            "account_sid": store.account_sid,
            "chat_service_sid": conversation.service_sid,
            "messaging_service_sid": conversation.messaging_service_sid,
            "sid": conversation.sid,
            "friendly_name": conversation.friendly_name,
            "unique_name": conversation.unique_name,
            "attributes": conversation.attributes,
            "state": conversation.state,
            "date_created": iso(conversation.date_created),
            "date_updated": iso(conversation.date_updated),
            "timers": {},
            "url": url,
            "links": {
                "participants": f"{url}/Participants",
                "messages": f"{url}/Messages",
                "webhooks": f"{url}/Webhooks",
            },
            "bindings": None,
        },
    )


def message_json(store: ConversationStore, scope: ResourceScope, message: Message) -> dict:
    url = f"{scope.conversation_url(message.conversation_sid)}/Messages/{message.sid}"
    return project(
        "message",
        scope,
        {
            "account_sid": store.account_sid,
            "chat_service_sid": store.conversations[message.conversation_sid].service_sid,
            "conversation_sid": message.conversation_sid,
            "sid": message.sid,
            "index": message.index,
            "author": message.author,
            "body": message.body,
            "media": message.media,
            "attributes": message.attributes,
            "participant_sid": message.participant_sid,
            "date_created": iso(message.date_created),
            "date_updated": iso(message.date_updated),
            "delivery": delivery_summary(store.receipts_of(message.sid)),
            "url": url,
            "links": {"delivery_receipts": f"{url}/Receipts", "channel_metadata": f"{url}/ChannelMetadata"},
            "content_sid": message.content_sid,
        },
    )


def receipt_json(store: ConversationStore, scope: ResourceScope, receipt: Receipt) -> dict:
    url = f"{scope.conversation_url(receipt.conversation_sid)}/Messages/{receipt.message_sid}/Receipts/{receipt.sid}"
    return project(
        "receipt",
        scope,
        {
            "account_sid": store.account_sid,
            "chat_service_sid": store.conversations[receipt.conversation_sid].service_sid,
            "conversation_sid": receipt.conversation_sid,
            "message_sid": receipt.message_sid,
            "sid": receipt.sid,
            "channel_message_sid": receipt.channel_message_sid,
            "participant_sid": receipt.participant_sid,
            "status": receipt.status,
            # Twilio's receipt guide shows `"error_code": null` on receipts without error (seed 001); the
            # spec's `default: 0` is the other reading, behind config.error_code_when_none.
            "error_code": receipt.error_code if receipt.error_code is not None else scope.error_code_when_none,
            "date_created": iso(receipt.date_created),
            "date_updated": iso(receipt.date_updated),  # null until the receipt is first updated (seed 002)
            "url": url,
        },
    )


def participant_json(store: ConversationStore, scope: ResourceScope, participant: Participant) -> dict:
    return project(
        "participant",
        scope,
        {
            "account_sid": store.account_sid,
            "chat_service_sid": store.conversations[participant.conversation_sid].service_sid,
            "conversation_sid": participant.conversation_sid,
            "sid": participant.sid,
            "identity": participant.identity,
            "attributes": participant.attributes,
            "messaging_binding": participant.binding.to_json() if participant.binding else None,
            "role_sid": participant.role_sid,
            "date_created": iso(participant.date_created),
            "date_updated": iso(participant.date_updated),
            "url": f"{scope.conversation_url(participant.conversation_sid)}/Participants/{participant.sid}",
            "last_read_message_index": participant.last_read_message_index,
            "last_read_timestamp": iso(participant.last_read_timestamp),
        },
    )


def webhooks_json(store: ConversationStore, scope: ResourceScope, settings: WebhookSettings) -> dict:
    return project(
        "webhooks",
        scope,
        {
            "account_sid": store.account_sid,
            "chat_service_sid": scope.service_sid,
            "method": settings.method,
            "filters": list(settings.filters),
            "pre_webhook_url": settings.pre_webhook_url,
            "post_webhook_url": settings.post_webhook_url,
            "target": settings.target,
            "url": f"{scope.root}/Configuration/Webhooks",
        },
    )


def service_json(store: ConversationStore, scope: ResourceScope, service: Service) -> dict:
    """A Conversation Service as the spec's ListService returns it; the emulator never updates a service, so
    `date_updated` is its creation date."""
    url = f"{scope.base_url.rstrip('/')}/v1/Services/{service.sid}"
    return project(
        "service",
        scope,
        {
            "account_sid": store.account_sid,
            "sid": service.sid,
            "friendly_name": service.friendly_name,
            "date_created": iso(service.date_created),
            "date_updated": iso(service.date_created),
            "url": url,
            "links": {
                "conversations": f"{url}/Conversations",
                "users": f"{url}/Users",
                "roles": f"{url}/Roles",
                "bindings": f"{url}/Bindings",
                "configuration": f"{url}/Configuration",
                "participant_conversations": f"{url}/ParticipantConversations",
            },
        },
    )


def configuration_json(store: ConversationStore, scope: ResourceScope) -> dict:
    """The account's Conversations configuration (the spec's FetchConfiguration): `default_chat_service_sid` is
    the service account-scoped routes (`/v1/Conversations`) read and write. The emulator has no Messaging Service
    and no state timers, so those fields are null (the spec marks each one nullable)."""
    return project(
        "configuration",
        scope,
        {
            "account_sid": store.account_sid,
            "default_chat_service_sid": store.default_service.sid,
            "default_messaging_service_sid": None,
            "default_inactive_timer": None,
            "default_closed_timer": None,
            "url": f"{scope.root}/Configuration",
            "links": {
                "service": f"{scope.root}/Services/{store.default_service.sid}/Configuration",
                "webhooks": f"{scope.root}/Configuration/Webhooks",
            },
        },
    )
