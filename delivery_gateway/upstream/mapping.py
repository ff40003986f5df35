"""Turns twilio SDK instances and pages into our plain records (records.py), stamping the service scope.

Never performs I/O and never lets an SDK object escape into a record.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from delivery_gateway.kernel.records import (
    ConfigurationRecord,
    ConversationRecord,
    MessageRecord,
    ParticipantRecord,
    ReceiptRecord,
    Record,
    ServiceRecord,
    WebhookConfigRecord,
)

R = TypeVar("R", bound=Record)

_OPTIONAL_TIMESTAMPS = ("date_created", "date_updated", "last_read_timestamp")


def _fields(instance: Any, record_cls: type[Record]) -> dict[str, Any]:
    names = record_cls.__dataclass_fields__
    data = {name: getattr(instance, name) for name in names if hasattr(instance, name)}
    for name in _OPTIONAL_TIMESTAMPS:
        if data.get(name) == "":
            data[name] = None
    return data


def to_record(record_cls: type[R], instance: Any, service_sid: str | None) -> R:
    """`record_cls` from an SDK instance; `chat_service_sid` is the scope's service when service-scoped,
    else whatever Twilio sent (the default-scope payloads of messages/receipts carry none)."""
    data = _fields(instance, record_cls)
    if "chat_service_sid" in record_cls.__dataclass_fields__:
        data["chat_service_sid"] = service_sid or data.get("chat_service_sid")
    return record_cls.from_dict(data)


def conversation(instance: Any, service_sid: str | None) -> ConversationRecord:
    return to_record(ConversationRecord, instance, service_sid)


def message(instance: Any, service_sid: str | None) -> MessageRecord:
    return to_record(MessageRecord, instance, service_sid)


def participant(instance: Any, service_sid: str | None) -> ParticipantRecord:
    return to_record(ParticipantRecord, instance, service_sid)


def receipt(instance: Any, service_sid: str | None) -> ReceiptRecord:
    return to_record(ReceiptRecord, instance, service_sid)


def webhook_config(instance: Any, service_sid: str | None) -> WebhookConfigRecord:
    data = _fields(instance, WebhookConfigRecord)
    data["chat_service_sid"] = service_sid or data.get("chat_service_sid")
    data["filters"] = list(data.get("filters") or [])
    return WebhookConfigRecord.from_dict(data)


def configuration(instance: Any) -> ConfigurationRecord:
    return ConfigurationRecord.from_dict(_fields(instance, ConfigurationRecord))


def service(instance: Any) -> ServiceRecord:
    return ServiceRecord.from_dict(_fields(instance, ServiceRecord))


def page_token(url: str | None) -> str | None:
    """Twilio's opaque PageToken from a next/previous page URL (None when there is no such page)."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("PageToken")
    return values[0] if values else None
