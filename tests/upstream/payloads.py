"""Twilio-shaped JSON payloads for scripted-server tests of UpstreamClient.

Test support only; never used by the gateway.
"""

from __future__ import annotations

from typing import Any

ACCOUNT = "AC" + "a" * 32
SERVICE = "IS" + "b" * 32
CONV = "CH" + "c" * 32
MSG = "IM" + "d" * 32
PART = "MB" + "e" * 32
RECEIPT = "DY" + "f" * 32
TS = "2026-11-23T04:00:00Z"


def conversation(sid: str = CONV, service: str = SERVICE) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "chat_service_sid": service,
        "friendly_name": "Support",
        "unique_name": None,
        "state": "active",
        "attributes": "{}",
        "date_created": TS,
        "date_updated": TS,
    }


def message(sid: str = MSG, index: int = 0, conv: str = CONV, service: str | None = None) -> dict[str, Any]:
    data = {
        "sid": sid,
        "conversation_sid": conv,
        "account_sid": ACCOUNT,
        "index": index,
        "author": "alice",
        "body": f"hello {index}",
        "media": None,
        "attributes": "{}",
        "participant_sid": PART,
        "delivery": {
            "total": 1,
            "sent": "all",
            "delivered": "none",
            "read": "none",
            "failed": "none",
            "undelivered": "none",
        },
        "content_sid": None,
        "date_created": TS,
        "date_updated": TS,
    }
    if service:
        data["chat_service_sid"] = service
    return data


def participant(sid: str = PART, conv: str = CONV) -> dict[str, Any]:
    return {
        "sid": sid,
        "conversation_sid": conv,
        "account_sid": ACCOUNT,
        "identity": None,
        "attributes": "{}",
        "messaging_binding": {"type": "sms", "address": "+15550000001", "proxy_address": "+15550000002"},
        "role_sid": None,
        "last_read_message_index": None,
        "last_read_timestamp": "",
        "date_created": TS,
        "date_updated": TS,
    }


def receipt(sid: str = RECEIPT, status: str = "delivered", conv: str = CONV, msg: str = MSG) -> dict[str, Any]:
    return {
        "sid": sid,
        "conversation_sid": conv,
        "message_sid": msg,
        "account_sid": ACCOUNT,
        "participant_sid": PART,
        "channel_message_sid": "SM" + "0" * 32,
        "status": status,
        "error_code": 0,
        "date_created": TS,
        "date_updated": TS,
    }


def page(
    key: str,
    items: list[dict[str, Any]],
    *,
    base: str,
    path: str,
    next_token: str | None = None,
    page_size: int = 50,
) -> dict[str, Any]:
    next_url = f"{base}{path}?PageSize={page_size}&Page=1&PageToken={next_token}" if next_token else None
    return {
        key: items,
        "meta": {
            "page": 0,
            "page_size": page_size,
            "first_page_url": f"{base}{path}?PageSize={page_size}&Page=0",
            "previous_page_url": None,
            "url": f"{base}{path}?PageSize={page_size}&Page=0",
            "next_page_url": next_url,
            "key": key,
        },
    }
