"""The emulated Conversations resources as plain mutable records: services, conversations, participants, ...

Data and the one state change a receipt knows (`advance`); never looks anything up and never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from delivery_gateway.emulator.delivery import IMPLIED

CHAT = "chat"
SMS = "sms"
WHATSAPP = "whatsapp"
WHATSAPP_PREFIX = "whatsapp:"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class WebhookSettings:
    """Account-level (/v1/Configuration/Webhooks) or service-level post-event webhook configuration."""

    post_webhook_url: str | None = None
    pre_webhook_url: str | None = None
    method: str = "POST"
    filters: list[str] = field(default_factory=list)
    target: str = "webhook"


@dataclass
class Service:
    sid: str
    friendly_name: str
    date_created: datetime
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)


@dataclass
class Conversation:
    sid: str
    service_sid: str
    friendly_name: str | None
    unique_name: str | None
    attributes: str
    state: str
    messaging_service_sid: str | None
    date_created: datetime
    date_updated: datetime
    seq: int
    next_index: int = 0


@dataclass
class MessagingBinding:
    type: str  # sms | whatsapp
    address: str
    proxy_address: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"type": self.type, "address": self.address, "proxy_address": self.proxy_address}


@dataclass
class Participant:
    sid: str
    conversation_sid: str
    identity: str | None
    binding: MessagingBinding | None
    attributes: str
    role_sid: str | None
    date_created: datetime
    date_updated: datetime
    seq: int
    last_read_message_index: int | None = None
    last_read_timestamp: datetime | None = None

    @property
    def channel(self) -> str:
        return self.binding.type if self.binding else CHAT

    @property
    def address(self) -> str | None:
        return self.binding.address if self.binding else None


@dataclass
class Message:
    sid: str
    conversation_sid: str
    index: int
    author: str
    body: str | None
    attributes: str
    participant_sid: str | None
    media: list[dict[str, object]] | None
    content_sid: str | None
    date_created: datetime
    date_updated: datetime
    source: str = "API"  # webhook Source: API (REST), SDK (chat), SMS or WHATSAPP (inbound)


@dataclass
class Receipt:
    sid: str
    conversation_sid: str
    message_sid: str
    participant_sid: str
    channel_message_sid: str
    status: str
    error_code: int | None
    date_created: datetime
    date_updated: datetime
    seq: int
    reached: set[str] = field(default_factory=set)  # every status passed through, for Message.delivery
    planned: list[tuple[str, int | None]] = field(default_factory=list)  # steps the simulator has yet to take

    def advance(self, status: str, error_code: int | None, when: datetime) -> None:
        self.status = status
        self.error_code = error_code
        self.date_updated = when
        self.reached.update(IMPLIED[status])
        self.reached.add(status)
