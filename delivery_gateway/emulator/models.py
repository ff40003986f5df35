"""The emulated Conversations resources as plain mutable records: services, conversations, participants, ...

Data and the one state change a receipt knows (`advance`); never looks anything up and never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from delivery_gateway.emulator.delivery import reached_by

CHAT = "chat"
SMS = "sms"
WHATSAPP = "whatsapp"
WHATSAPP_PREFIX = "whatsapp:"


def utc_now() -> datetime:
    """Now, to the millisecond: Twilio's webhooks carry milliseconds (`2021-08-10T18:00:58.111Z`), REST does not."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


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
    """How a participant exchanges messages. SMS/WhatsApp: `address` + `proxy_address`. Group MMS (an SDK
    participant with `identity`): only `projected_address`, as Twilio's spec example `createGmms` shows
    (`{"type": "sms", "projected_address": "+15017122661"}`)."""

    type: str  # sms | whatsapp
    address: str | None = None
    proxy_address: str | None = None
    projected_address: str | None = None

    def to_json(self) -> dict[str, str | None]:
        if self.projected_address is not None:
            return {"type": self.type, "projected_address": self.projected_address}
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
    last_read_message_index: int | None = None  # null until the participant first reads (as the SDK reports)
    last_read_timestamp: datetime | None = None
    date_removed: datetime | None = None

    @property
    def channel(self) -> str:
        """CHAT for every SDK participant, Group MMS ones included: Twilio's spec says `identity` is "non-null if
        (and only if) the participant is using the Conversations SDK to communicate". Else the binding's type."""
        if self.identity is not None or self.binding is None:
            return CHAT
        return self.binding.type

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
    media: list[dict[str, object]] | None  # REST spelling: sid, content_type, filename, size
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
    status: str | None  # Twilio: "read, failed, delivered, undelivered, sent or null"; queued/unknown by knob
    error_code: int | None
    date_created: datetime
    date_updated: datetime | None  # Twilio: "null if the delivery receipt has not been updated"
    seq: int
    reached: set[str] = field(default_factory=set)  # every summary status passed through, for Message.delivery
    planned: list[tuple[str | None, int | None]] = field(default_factory=list)  # steps the simulator has yet to take

    def advance(self, status: str | None, error_code: int | None, when: datetime) -> None:
        self.status = status
        self.error_code = error_code
        self.date_updated = when
        self.reached.update(reached_by(status))
