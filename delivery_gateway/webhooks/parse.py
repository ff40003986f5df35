"""Turns a Twilio Conversations post-event form into a typed ledger event, or says exactly why it cannot.

Pure: never performs I/O and never trusts a field it has not validated (SIDs, statuses, integers, dates).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict
from urllib.parse import unquote

from delivery_gateway.kernel import sids
from delivery_gateway.kernel.records import DeliveryStatus
from delivery_gateway.ledger.events import (
    ConversationEvent,
    DeliveryEvent,
    LedgerEvent,
    MembershipEvent,
    MessageEvent,
    ReadHorizonEvent,
)

SUPPORTED_EVENTS = (
    "onDeliveryUpdated",
    "onMessageAdded",
    "onMessageUpdated",
    "onMessageRemoved",
    "onParticipantAdded",
    "onParticipantUpdated",
    "onParticipantRemoved",
    "onConversationUpdated",
    "onConversationStateUpdated",
)


MAX_FORM_FIELDS = 1000  # as Starlette's form parser allows


class MalformedWebhook(ValueError):
    """A request Twilio could not have sent: answered 400 with this reason, nothing recorded."""


def parse_urlencoded(body: bytes) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body as (name, value) pairs, exactly as Starlette's form parser
    reads it (fields split on `&`, empty fields skipped, a field without `=` has an empty value, `+` and
    percent-escapes decoded as UTF-8 with replacement, raw bytes as Latin-1), at a fraction of its cost.

    `urllib.parse.parse_qsl(keep_blank_values=True)`'s rule, without its per-field calls for the fields that
    need no decoding (a SID, an event type: most of a Twilio form)."""
    text = body.decode("latin-1")
    if not text:
        return []
    if text.count("&") + 1 > MAX_FORM_FIELDS:
        raise MalformedWebhook(f"unreadable form body: more than {MAX_FORM_FIELDS} fields")
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((_form_decoded(name), _form_decoded(value)))
    return pairs


def _form_decoded(text: str) -> str:
    """`unquote(text.replace("+", " "))`, as parse_qsl decodes a name or value (unquote leaves a text without `%`
    as it is)."""
    if "%" in text:
        return unquote(text.replace("+", " "))
    return text.replace("+", " ") if "+" in text else text


def _optional_sid(form: Mapping[str, str], name: str, prefix: str) -> str | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    if not sids.is_sid(value, prefix):
        raise MalformedWebhook(f"{name}: {value!r} is not a valid SID (expected {prefix} + 32 hex digits)")
    return value


def _sid(form: Mapping[str, str], name: str, prefix: str) -> str:
    value = _optional_sid(form, name, prefix)
    if value is None:
        raise MalformedWebhook(f"{name} is missing")
    return value


MAX_INT = 2**53  # indices and error codes are far below it; it keeps every integer exact in JSON and in SQL


def _int(form: Mapping[str, str], name: str) -> int | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise MalformedWebhook(f"{name}: {value[:40]!r} is not an integer") from None
    if not 0 <= number <= MAX_INT:
        raise MalformedWebhook(f"{name}: {number} is out of range (0 to 2^53)")
    return number


def _date(form: Mapping[str, str], name: str) -> str | None:
    """ISO-8601 in one canonical spelling (UTC, microseconds when present), so dates compare as strings."""
    value = form.get(name)
    if value in (None, ""):
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedWebhook(f"{name}: {value[:40]!r} is not an ISO-8601 date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise MalformedWebhook(f"{name}: {value[:40]!r} is out of range once in UTC") from None


# A media object's fields in the REST spelling (Message.media), and every spelling a webhook may use for each:
# the Conversations webhook page's (Sid, ContentType, Filename, Size), the Event Streams schema's MediaSid, and
# the REST spelling itself.
_MEDIA_FIELDS = {
    "sid": ("sid", "Sid", "MediaSid", "media_sid"),
    "content_type": ("content_type", "ContentType"),
    "filename": ("filename", "Filename"),
    "size": ("size", "Size"),
}


def _media_item(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise MalformedWebhook("Media holds something other than media objects")
    out: dict[str, Any] = {}
    for name, spellings in _MEDIA_FIELDS.items():
        out[name] = next((item[s] for s in spellings if item.get(s) is not None), None)
    size = out["size"]
    if size is not None:
        try:
            out["size"] = int(size)
        except (TypeError, ValueError):
            raise MalformedWebhook(f"Media: size {str(size)[:20]!r} is not an integer") from None
    return out


def _media(form: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """The `Media` parameter ("Stringified JSON array of attached media objects") in the REST spelling."""
    value = form.get("Media")
    if not value:
        return None
    try:
        media = json.loads(value)
    except ValueError:
        raise MalformedWebhook("Media is not JSON") from None
    if not isinstance(media, list):
        raise MalformedWebhook("Media is not a JSON array")
    return [_media_item(item) for item in media]


class _Common(TypedDict):
    conversation_sid: str
    service_sid: str | None
    account_sid: str | None


def _common(form: Mapping[str, str]) -> _Common:
    return {
        "conversation_sid": _sid(form, "ConversationSid", sids.CONVERSATION),
        "service_sid": _optional_sid(form, "ChatServiceSid", sids.SERVICE),
        "account_sid": _optional_sid(form, "AccountSid", sids.ACCOUNT),
    }


def parse_event(form: Mapping[str, str]) -> LedgerEvent | None:
    """The typed event; None for an event type the gateway does not track (answered 200, ignored)."""
    event_type = form.get("EventType")
    if not event_type:
        raise MalformedWebhook("EventType is missing")
    if event_type not in SUPPORTED_EVENTS:
        return None
    common = _common(form)
    if event_type == "onDeliveryUpdated":
        receipt_sid = _sid(form, "DeliveryReceiptSid", sids.RECEIPT)
        message_sid = _sid(form, "MessageSid", sids.MESSAGE)
        status_value = DeliveryStatus.parse(form.get("Status"))
        if status_value is None:
            # Seed 002: a receipt's status may be null, and Twilio may add statuses: either says nothing the
            # ledger can order, so the event is accepted (200) and left out; the receipt reads as pending.
            return None
        error_code = _int(form, "ErrorCode")
        return DeliveryEvent(
            message_sid=message_sid,
            receipt_sid=receipt_sid,
            participant_sid=_optional_sid(form, "ParticipantSid", sids.PARTICIPANT),
            channel_message_sid=form.get("ChannelMessageSid") or None,
            status=status_value,
            error_code=error_code or None,
            date_created=_date(form, "DateCreated"),
            date_updated=_date(form, "DateUpdated") or _date(form, "DateCreated"),
            source=(form.get("Source") or "webhook").lower(),
            **common,
        )
    if event_type == "onParticipantUpdated":
        return ReadHorizonEvent(
            participant_sid=_sid(form, "ParticipantSid", sids.PARTICIPANT),
            last_read_message_index=_int(form, "LastReadMessageIndex"),
            identity=form.get("Identity") or None,
            last_read_timestamp=_date(form, "LastReadTimestamp"),
            date_updated=_date(form, "DateUpdated"),
            **common,
        )
    if event_type in ("onParticipantAdded", "onParticipantRemoved"):
        # Conversations Webhooks, "Post Action Webhooks request parameters": both carry ParticipantSid and
        # Identity (chat participants only); onParticipantRemoved adds DateUpdated and DateRemoved.
        return MembershipEvent(
            action="added" if event_type == "onParticipantAdded" else "removed",
            participant_sid=_sid(form, "ParticipantSid", sids.PARTICIPANT),
            identity=form.get("Identity") or None,
            date_updated=_date(form, "DateRemoved") or _date(form, "DateUpdated") or _date(form, "DateCreated"),
            **common,
        )
    if event_type in ("onMessageAdded", "onMessageUpdated", "onMessageRemoved"):
        action = {"onMessageAdded": "added", "onMessageUpdated": "updated", "onMessageRemoved": "removed"}
        return MessageEvent(
            action=action[event_type],
            message_sid=_sid(form, "MessageSid", sids.MESSAGE),
            index=_int(form, "Index"),
            author=form.get("Author"),
            body=form.get("Body"),
            attributes=form.get("Attributes"),
            media=_media(form),
            participant_sid=_optional_sid(form, "ParticipantSid", sids.PARTICIPANT),
            date_created=_date(form, "DateCreated"),
            date_updated=_date(form, "DateUpdated") or _date(form, "DateRemoved"),
            **common,
        )
    return ConversationEvent(
        action="state_updated" if event_type == "onConversationStateUpdated" else "updated",
        state=form.get("StateTo") or form.get("State"),
        state_from=form.get("StateFrom"),
        friendly_name=form.get("FriendlyName"),
        unique_name=form.get("UniqueName"),
        attributes=form.get("Attributes"),
        date_updated=_date(form, "DateUpdated"),
        **common,
    )
