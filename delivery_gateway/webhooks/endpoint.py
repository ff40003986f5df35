"""`POST /webhooks/twilio`: verifies, validates and durably records one Twilio post-event, then answers 200.

Never changes anything for a request whose signature does not verify (403), that Twilio could not have sent
(400, naming the field), or that is about another account (200, counted, ignored); and never makes Twilio wait
for processing: it answers once the raw event is in the ledger's inbox.
"""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from delivery_gateway.kernel.metrics import Metrics
from delivery_gateway.kernel.request_stats import note_webhook
from delivery_gateway.ledger import DeliveryLedger
from delivery_gateway.webhooks.parse import MalformedWebhook, parse_event, parse_urlencoded
from delivery_gateway.webhooks.processor import WebhookProcessor
from delivery_gateway.webhooks.signature import SignedParams, called_url, signature_valid

log = logging.getLogger(__name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class TwilioWebhookEndpoint:
    """`handle` is the Starlette request/response endpoint."""

    def __init__(
        self,
        *,
        auth_token: str | None,
        public_url: str | None,
        ledger: DeliveryLedger,
        processor: WebhookProcessor,
        metrics: Metrics,
        account_sid: str | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.public_url = public_url
        self.ledger = ledger
        self.processor = processor
        self.metrics = metrics

    def _count(self, event_type: str | None, outcome: str) -> None:
        self.metrics.webhooks_received.labels(event_type or "unknown", outcome).inc()
        note_webhook(event_type, outcome)

    async def handle(self, request: Request) -> JSONResponse:
        signature = request.headers.get("x-twilio-signature")
        if not signature:
            self._count(None, "rejected")
            return JSONResponse({"error": "missing X-Twilio-Signature"}, status_code=403)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in FORM_TYPES:
            self._count(None, "malformed")
            return JSONResponse(
                {"error": f"expected a form-encoded body, got {content_type or 'no content type'}"},
                status_code=400,
            )
        try:
            form = await _read_form(request, content_type)
        except Exception as exc:
            self._count(None, "malformed")
            return JSONResponse({"error": f"unreadable form body: {exc}"}, status_code=400)
        params = form.last_values()
        event_type = params.get("EventType")
        url = called_url(request, self.public_url)
        settings_header = request.headers.get("x-twilio-webhooks-signature-settings")
        if not signature_valid(self.auth_token, url, form, signature, settings_header):
            self._count(event_type, "rejected")
            return JSONResponse({"error": "X-Twilio-Signature does not match"}, status_code=403)
        try:
            event = parse_event(params)
        except MalformedWebhook as exc:
            self._count(event_type, "malformed")
            return JSONResponse({"error": str(exc)}, status_code=400)
        if event is None:
            self._count(event_type, "ignored")
            reason = (
                "no delivery status yet (null, or one not known to this gateway)"
                if event_type == "onDeliveryUpdated"
                else f"{event_type} is not tracked"
            )
            return JSONResponse({"status": "ignored", "reason": reason})
        if self.account_sid and event.account_sid and event.account_sid != self.account_sid:
            # Signed with our auth token, yet about another account (a subaccount's, a copied configuration): a
            # 200 so that nobody retries it, and nothing of it reaches the ledger.
            self._count(event_type, "foreign_account")
            log.warning("webhook %s for account %s ignored: not this gateway's account", event_type, event.account_sid)
            return JSONResponse({"status": "ignored", "reason": "AccountSid is not this gateway's account"})
        await self.processor.admit()  # waits while acknowledged events wait to be applied at the backlog's limit
        try:
            entry_id = await self.ledger.inbox_add(json.dumps(params, separators=(",", ":")))
        except Exception:
            log.exception("could not record webhook %s", event_type)
            self._count(event_type, "unavailable")
            return JSONResponse({"error": "ledger unavailable; retry"}, status_code=503)
        self.processor.submit(entry_id, event)
        self._count(event_type, "accepted")
        return JSONResponse({"status": "accepted"})


async def _read_form(request: Request, content_type: str) -> SignedParams:
    """Every (name, value) of the body. URL-encoded (what Twilio sends) is read from the body in one call;
    multipart goes through Starlette's parser."""
    if content_type == "application/x-www-form-urlencoded":
        return SignedParams.of(parse_urlencoded(await request.body()))
    form = await request.form()
    return SignedParams.of((key, str(value)) for key, value in form.multi_items())
