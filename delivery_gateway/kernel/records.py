"""Plain records of Twilio Conversations resources, as the upstream client returns and the cache stores them.

Immutable, JSON round-trippable (`to_json` / `from_json`), free of SDK objects and of rules: a record never
carries I/O, and what its values mean (status order, channels, ticks) lives in delivery/.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Generic, Self, TypeVar

# `json.dumps(value, separators=(",", ":"))` without building an encoder per call (every ledger row and change).
compact_json = json.JSONEncoder(separators=(",", ":")).encode

log = logging.getLogger(__name__)


class DeliveryStatus(StrEnum):
    """A receipt's status as Twilio names it. Which status outranks which is a delivery rule (delivery/statuses.py).

    Twilio documents five ("read, failed, delivered, undelivered, sent or null"); `queued` is Twilio Messaging's
    status of a message not sent yet, seen on receipts too. Anything else is parsed to None by `parse`.
    """

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"

    @classmethod
    def parse(cls, value: str | None) -> DeliveryStatus | None:
        """The status Twilio reported; None for null and for a status not (yet) known here, which is logged once
        per process and value: a new status must degrade a receipt to "no status yet", never fail a request."""
        if value is None or value == "":
            return None
        try:
            return cls(value)
        except ValueError:
            text = str(value)[:40]
            if text not in _UNKNOWN_LOGGED and len(_UNKNOWN_LOGGED) < 100:
                _UNKNOWN_LOGGED.add(text)
                log.warning("unknown receipt status %r from Twilio: treated as no status yet", text)
            return None


_UNKNOWN_LOGGED: set[str] = set()


def parse_datetime(value: Any) -> datetime | None:
    """A record's datetime field from its JSON value (ISO-8601, `Z` for UTC), a datetime or None."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, float, bool})  # exact types (a str enum is not one of them)


class Record:
    """JSON round trip shared by every record: datetimes as ISO-8601, enums as their value."""

    _datetime_fields: ClassVar[tuple[str, ...]] = ("date_created", "date_updated")
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every record is a dataclass

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The record's fields (`dataclasses.fields`: no ClassVar), in order, computed once per class: a cold chat
        screen builds about 200 records, and `dataclasses.fields` per record was a visible share of its CPU."""
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
        return names

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is None or type(value) in _PLAIN:  # most fields: nothing to convert, no isinstance chain
                out[name] = value
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Record):
                value = value.to_dict()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = cls.field_names()
        kwargs = {k: data[k] for k in names if k in data}
        for name in cls._datetime_fields:
            if name in kwargs:
                kwargs[name] = parse_datetime(kwargs[name])
        return cls(**kwargs)

    def to_json(self) -> str:
        return compact_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ConversationRecord(Record):
    sid: str
    account_sid: str | None = None
    chat_service_sid: str | None = None
    friendly_name: str | None = None
    unique_name: str | None = None
    state: str | None = None  # active | inactive | closed
    attributes: str | None = None  # JSON text, as Twilio sends it
    date_created: datetime | None = None
    date_updated: datetime | None = None


@dataclass(frozen=True)
class MessageRecord(Record):
    sid: str
    conversation_sid: str
    index: int
    account_sid: str | None = None
    chat_service_sid: str | None = None  # not in Twilio's payload; filled from the scope it was fetched in
    author: str | None = None
    body: str | None = None
    media: list[dict[str, Any]] | None = None
    attributes: str | None = None
    participant_sid: str | None = None
    delivery: dict[str, Any] | None = None  # Twilio's aggregated summary: total + all/some/none per status
    content_sid: str | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


@dataclass(frozen=True)
class ParticipantRecord(Record):
    _datetime_fields: ClassVar[tuple[str, ...]] = ("date_created", "date_updated", "last_read_timestamp")

    sid: str
    conversation_sid: str
    account_sid: str | None = None
    chat_service_sid: str | None = None
    identity: str | None = None  # set for chat participants only
    attributes: str | None = None
    messaging_binding: dict[str, Any] | None = None  # {type: sms|whatsapp, address, proxy_address}
    role_sid: str | None = None
    last_read_message_index: int | None = None
    last_read_timestamp: datetime | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None


@dataclass(frozen=True)
class ReceiptRecord(Record):
    sid: str
    conversation_sid: str
    message_sid: str
    participant_sid: str | None = None
    account_sid: str | None = None
    chat_service_sid: str | None = None
    channel_message_sid: str | None = None
    status: DeliveryStatus | None = None  # None: null, or a status this version does not know (see reported_status)
    error_code: int | None = None
    date_created: datetime | None = None
    date_updated: datetime | None = None
    reported_status: str | None = None  # the status text exactly as Twilio sent it

    def __post_init__(self) -> None:
        if self.reported_status is None and self.status is not None:  # a record built in code: its own status
            object.__setattr__(self, "reported_status", DeliveryStatus(self.status).value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        raw = data.get("status")
        raw = raw.value if isinstance(raw, DeliveryStatus) else raw
        if data.get("reported_status") is None:
            data["reported_status"] = raw
        data["status"] = DeliveryStatus.parse(raw)
        if data.get("error_code") == 0:
            data["error_code"] = None
        return super().from_dict(data)


@dataclass(frozen=True)
class WebhookConfigRecord(Record):
    _datetime_fields: ClassVar[tuple[str, ...]] = ()

    account_sid: str | None = None
    chat_service_sid: str | None = None
    method: str | None = None
    filters: list[str] = field(default_factory=list)
    pre_webhook_url: str | None = None
    post_webhook_url: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class ConfigurationRecord(Record):
    """The account's Conversations configuration (`GET /v1/Configuration`): which service is the default one."""

    _datetime_fields: ClassVar[tuple[str, ...]] = ()

    account_sid: str | None = None
    default_chat_service_sid: str | None = None
    default_messaging_service_sid: str | None = None


@dataclass(frozen=True)
class ServiceRecord(Record):
    """A Conversation Service of the account (`GET /v1/Services`): a silo with its own webhook configuration."""

    _datetime_fields: ClassVar[tuple[str, ...]] = ()

    sid: str
    friendly_name: str | None = None


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Page(Generic[R]):
    """One upstream list page. `next_page_token` is Twilio's opaque PageToken (None on the last page)."""

    items: list[R]
    page_size: int
    next_page_token: str | None = None
    previous_page_token: str | None = None
