"""The contract between resolvers/loaders and Twilio: what the gateway may ask of Conversations v1.

Declares only; never performs I/O. `UpstreamClient` (client.py) implements it over the twilio SDK; tests may
implement it with fakes. `service_sid=None` means the account's default Conversation Service.
"""

from __future__ import annotations

from typing import Protocol

from delivery_gateway.kernel.records import (
    ConfigurationRecord,
    ConversationRecord,
    MessageRecord,
    Page,
    ParticipantRecord,
    ReceiptRecord,
    ServiceRecord,
    WebhookConfigRecord,
)

# Twilio's own page-size limits (spec/twilio_conversations_v1.json, PageSize maximum): Receipts lists take
# at most 50 per page, the Conversations, Messages and Participants lists at most 100.
TWILIO_MAX_PAGE_SIZE = 100
TWILIO_RECEIPTS_MAX_PAGE_SIZE = 50


class ConversationsAPI(Protocol):
    async def start(self) -> None:
        """Open connections (inside the running loop); idempotent."""
        ...

    async def close(self) -> None: ...

    async def fetch_conversation(self, sid: str, *, service_sid: str | None = None) -> ConversationRecord: ...

    async def list_conversations(
        self,
        *,
        service_sid: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
        state: str | None = None,
    ) -> Page[ConversationRecord]: ...

    async def fetch_message(
        self, conversation_sid: str, sid: str, *, service_sid: str | None = None
    ) -> MessageRecord: ...

    async def list_messages(
        self,
        conversation_sid: str,
        *,
        service_sid: str | None = None,
        order: str = "desc",  # "asc" | "desc", Twilio's Order parameter
        page_size: int = 50,
        page_token: str | None = None,
    ) -> Page[MessageRecord]: ...

    async def create_message(
        self,
        conversation_sid: str,
        *,
        service_sid: str | None = None,
        author: str | None = None,
        body: str | None = None,
        media_sid: str | None = None,
        attributes: str | None = None,
        webhook_enabled: bool = False,
    ) -> MessageRecord:
        """Post a message. `webhook_enabled` asks Twilio to fire this action's own webhooks (onMessageAdded...)
        by sending `X-Twilio-Webhook-Enabled: true`: without it, Twilio fires none for REST-made messages."""
        ...

    async def list_participants(
        self, conversation_sid: str, *, service_sid: str | None = None
    ) -> list[ParticipantRecord]:
        """Every participant of the conversation (all pages)."""
        ...

    async def list_receipts(
        self, conversation_sid: str, message_sid: str, *, service_sid: str | None = None
    ) -> list[ReceiptRecord]:
        """Every receipt of the message (all pages, PageSize 50)."""
        ...

    async def fetch_receipt(
        self, conversation_sid: str, message_sid: str, sid: str, *, service_sid: str | None = None
    ) -> ReceiptRecord: ...

    async def fetch_configuration(self) -> ConfigurationRecord:
        """The account's Conversations configuration (`GET /v1/Configuration`): its default service."""
        ...

    async def list_services(self) -> list[ServiceRecord]:
        """Every Conversation Service of the account (`GET /v1/Services`, all pages)."""
        ...

    async def fetch_webhook_config(self, *, service_sid: str | None = None) -> WebhookConfigRecord: ...

    async def update_webhook_config(
        self,
        *,
        service_sid: str | None = None,
        post_webhook_url: str | None = None,
        method: str | None = None,
        filters: list[str] | None = None,
    ) -> WebhookConfigRecord: ...
