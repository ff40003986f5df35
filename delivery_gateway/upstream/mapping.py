"""Turns twilio SDK instances, or Twilio's JSON itself, into our plain records (records.py), stamping the service
scope. Both inputs go through the same rules, so a record does not depend on which path read it.

Never performs I/O and never lets an SDK object escape into a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from twilio.base import deserialize

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
# Integer fields of Twilio's payloads, read as the SDK reads them (`deserialize.integer`: int, or the value as sent).
_INTEGERS = ("index", "last_read_message_index", "error_code")
# Record fields the gateway fills itself: never read from a payload.
_GATEWAY_FIELDS = frozenset({"reported_status"})
_PAYLOAD_FIELDS: dict[type[Record], tuple[str, ...]] = {}


def _optional_timestamps(data: dict[str, Any]) -> dict[str, Any]:
    for name in _OPTIONAL_TIMESTAMPS:
        if data.get(name) == "":
            data[name] = None
    return data


def _fields(instance: Any, record_cls: type[Record]) -> dict[str, Any]:
    names = record_cls.field_names()
    return _optional_timestamps({name: getattr(instance, name) for name in names if hasattr(instance, name)})


def _payload_fields(record_cls: type[Record]) -> tuple[str, ...]:
    names = _PAYLOAD_FIELDS.get(record_cls)
    if names is None:
        names = tuple(name for name in record_cls.field_names() if name not in _GATEWAY_FIELDS)
        _PAYLOAD_FIELDS[record_cls] = names
    return names


def _scoped(record_cls: type[R], data: dict[str, Any], service_sid: str | None) -> R:
    """`chat_service_sid` is the scope's service when service-scoped, else whatever Twilio sent (the default-scope
    payloads of messages/receipts carry none)."""
    if "chat_service_sid" in record_cls.__dataclass_fields__:
        data["chat_service_sid"] = service_sid or data.get("chat_service_sid")
    return record_cls.from_dict(data)


def to_record(record_cls: type[R], instance: Any, service_sid: str | None) -> R:
    """`record_cls` from an SDK instance (see `_scoped` for the service)."""
    return _scoped(record_cls, _fields(instance, record_cls), service_sid)


def from_payload(record_cls: type[R], payload: Mapping[str, Any], service_sid: str | None) -> R:
    """`record_cls` from one resource of Twilio's JSON, read as the SDK's instance classes read it: the fields of the
    same names, integers through the SDK's own `deserialize.integer`, an empty timestamp as none (dates are parsed
    by the record itself, as it parses the SDK's datetimes or the strings the SDK leaves unparsed)."""
    data = {name: payload[name] for name in _payload_fields(record_cls) if name in payload}
    for name in _INTEGERS:
        value = data.get(name)
        if value is not None and not isinstance(value, int):
            data[name] = deserialize.integer(value)
    return _scoped(record_cls, _optional_timestamps(data), service_sid)


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


# Paging keys of a list payload besides its records (twilio.base.page.Page.META_KEYS).
_PAGE_META_KEYS = frozenset(
    {
        "end",
        "first_page_uri",
        "next_page_uri",
        "last_page_uri",
        "page",
        "page_size",
        "previous_page_uri",
        "total",
        "num_pages",
        "start",
        "uri",
    }
)


class UnreadablePage(ValueError):
    """A list payload whose records cannot be found (the SDK's "Page Records can not be deserialized")."""


def page_items(payload: Any) -> list[Any]:
    """The records of one list payload, found as the SDK's `Page.load_page` finds them: under `meta.key`, else under
    the one key that is not paging metadata."""
    if not isinstance(payload, dict):
        raise UnreadablePage("a list page that is not a JSON object")
    meta = payload.get("meta")
    if isinstance(meta, dict) and "key" in meta:
        items = payload.get(meta["key"])
    else:
        keys = payload.keys() - _PAGE_META_KEYS
        items = payload[keys.pop()] if len(keys) == 1 else payload.get("Resources")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UnreadablePage("page records can not be deserialized")
    return items


def page_tokens(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """(next, previous) PageTokens of a list payload, from `meta.*_page_url` or the legacy `*_page_uri`."""
    meta = payload.get("meta")
    meta = meta if isinstance(meta, dict) else {}

    def url(name: str) -> str | None:
        value = meta.get(f"{name}_page_url") if f"{name}_page_url" in meta else payload.get(f"{name}_page_uri")
        return value if isinstance(value, str) else None

    return page_token(url("next")), page_token(url("previous"))
