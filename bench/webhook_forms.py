"""Signed Twilio `onDeliveryUpdated` webhooks for the rows that drive ingest and fan-out, and the receipts to send.

Forms carry the parameters Twilio sends (as the emulator's `webhook_events.delivery_params` does) and are signed
with twilio's own RequestValidator for the gateway's public URL. Never sends anything but to loopback gateways.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from bench.gateway import PUBLIC_URL
from bench.harness import ServerProcess, emulator_auth

WEBHOOK_PATH = "/webhooks/twilio"
FORM_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "X-Twilio-Signature"


@dataclass(frozen=True)
class ReceiptRef:
    """Where a delivery receipt lives: enough to write its webhook."""

    conversation_sid: str
    message_sid: str
    receipt_sid: str
    participant_sid: str | None
    channel_message_sid: str | None


def fake_sid(prefix: str, n: int, salt: str = "bench") -> str:
    """A well-formed SID (prefix + 32 hex digits) that is the same for the same (prefix, n, salt)."""
    return prefix + hashlib.md5(f"{salt}/{prefix}/{n}".encode(), usedforsecurity=False).hexdigest()


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery_form(
    receipt: ReceiptRef, *, account_sid: str, service_sid: str, status: str, when: datetime
) -> dict[str, str]:
    form = {
        "EventType": "onDeliveryUpdated",
        "AccountSid": account_sid,
        "ChatServiceSid": service_sid,
        "ConversationSid": receipt.conversation_sid,
        "MessageSid": receipt.message_sid,
        "DeliveryReceiptSid": receipt.receipt_sid,
        "ChannelMessageSid": receipt.channel_message_sid,
        "ParticipantSid": receipt.participant_sid,
        "Status": status,
        "DateCreated": iso(when),
        "DateUpdated": iso(when),
        "Source": "API",
    }
    return {k: v for k, v in form.items() if v is not None}


class WebhookSigner:
    def __init__(self, auth_token: str, public_url: str = PUBLIC_URL) -> None:
        self.validator = RequestValidator(auth_token)
        self.url = public_url.rstrip("/") + WEBHOOK_PATH

    def sign(self, form: dict[str, str]) -> str:
        return self.validator.compute_signature(self.url, form)

    def encode(self, form: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the signed POST."""
        return urlencode(form).encode(), {"content-type": FORM_TYPE, SIGNATURE_HEADER: self.sign(form)}


async def post_webhook(
    session: aiohttp.ClientSession, gateway_url: str, signer: WebhookSigner, form: dict[str, str]
) -> None:
    body, headers = signer.encode(form)
    async with session.post(gateway_url + WEBHOOK_PATH, data=body, headers=headers) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"webhook answered {resp.status}: {text[:200]}")


async def emulator_receipts(
    session: aiohttp.ClientSession, emulator: ServerProcess, conversation_sid: str, wanted: int
) -> list[ReceiptRef]:
    """Up to `wanted` real receipts of the conversation, newest messages first (from the emulator's REST API)."""
    auth = emulator_auth(emulator)
    base = f"{emulator.url}/v1/Conversations/{conversation_sid}/Messages"
    async with session.get(base + "?Order=desc&PageSize=100", headers=auth) as resp:
        messages = (await resp.json())["messages"]
    found: list[ReceiptRef] = []
    for message in messages:
        if not message.get("delivery"):
            continue
        async with session.get(f"{base}/{message['sid']}/Receipts?PageSize=50", headers=auth) as resp:
            receipts = (await resp.json())["delivery_receipts"]
        found.extend(
            ReceiptRef(
                conversation_sid=conversation_sid,
                message_sid=message["sid"],
                receipt_sid=r["sid"],
                participant_sid=r.get("participant_sid"),
                channel_message_sid=r.get("channel_message_sid"),
            )
            for r in receipts
        )
        if len(found) >= wanted:
            break
    if len(found) < wanted:
        raise RuntimeError(f"the conversation has {len(found)} receipts; the bench needs {wanted}")
    return found[:wanted]
