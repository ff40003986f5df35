"""`POST /webhooks/twilio`: verifies, validates and durably records one Twilio post-event, then answers 200.

Never changes anything for a request whose signature does not verify (403), that Twilio could not have sent
(400, naming the field), or that is about another account (200, counted, ignored); and never makes Twilio wait
for processing: it answers once the raw event is in the ledger's inbox.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from delivery_gateway.kernel.metrics import Children, Metrics
from delivery_gateway.kernel.records import compact_json
from delivery_gateway.kernel.request_stats import note_webhook
from delivery_gateway.ledger import DeliveryLedger
from delivery_gateway.webhooks.parse import SUPPORTED_EVENTS, MalformedWebhook, parse_event, parse_urlencoded
from delivery_gateway.webhooks.processor import WebhookProcessor
from delivery_gateway.webhooks.signature import SignedParams, called_url, signature_valid

log = logging.getLogger(__name__)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ACCEPTED: dict[str, str] = {"status": "accepted"}

Answer = tuple[int, dict[str, str]]  # (HTTP status, JSON body)


def event_label(event_type: str | None) -> str:
    """The `event_type` label of a webhook: the event types the gateway handles by name, anything else "other",
    absent "unknown". The type is read before the signature is checked (a rejected request is counted too), so a
    label taken from it verbatim would let anyone create metric series without end."""
    if event_type is None:
        return "unknown"
    return event_type if event_type in SUPPORTED_EVENTS else "other"


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
        self._received = Children(metrics.webhooks_received)

    def _count(self, event_type: str | None, outcome: str) -> None:
        label = event_label(event_type)
        self._received(label, outcome).inc()
        note_webhook(label, outcome)

    async def handle(self, request: Request) -> JSONResponse:
        """The route: any form type Twilio may use (multipart through Starlette's parser)."""
        headers = request.headers
        signature = headers.get("x-twilio-signature")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        refusal = self.refusal_before_body(signature, content_type)
        if refusal is not None:
            return JSONResponse(refusal[1], status_code=refusal[0])
        try:
            form = await _read_form(request, content_type)
        except Exception as exc:
            status, payload = self.unreadable(exc)
            return JSONResponse(payload, status_code=status)
        status, payload = await self.ingest(
            form,
            url=called_url(request.url, self.public_url),
            signature=signature or "",
            settings_header=headers.get("x-twilio-webhooks-signature-settings"),
        )
        return JSONResponse(payload, status_code=status)

    def refusal_before_body(self, signature: str | None, content_type: str) -> Answer | None:
        """What to answer from the headers alone (no signature: 403; not a form: 400), before any body is read."""
        if not signature:
            self._count(None, "rejected")
            return 403, {"error": "missing X-Twilio-Signature"}
        if content_type not in FORM_TYPES:
            self._count(None, "malformed")
            return 400, {"error": f"expected a form-encoded body, got {content_type or 'no content type'}"}
        return None

    def unreadable(self, exc: Exception) -> Answer:
        """The 400 for a body that is no form."""
        self._count(None, "malformed")
        return 400, {"error": f"unreadable form body: {exc}"}

    async def ingest(self, form: SignedParams, *, url: str, signature: str, settings_header: str | None) -> Answer:
        """(status, JSON body) for a signed form: verified once, validated, durably recorded, then 200. The one
        rule of the route and of its lean path (webhooks/front.py)."""
        params = form.last_values()
        event_type = params.get("EventType")
        if not signature_valid(self.auth_token, url, form, signature, settings_header):
            self._count(event_type, "rejected")
            return 403, {"error": "X-Twilio-Signature does not match"}
        try:
            event = parse_event(params)
        except MalformedWebhook as exc:
            self._count(event_type, "malformed")
            return 400, {"error": str(exc)}
        if event is None:
            self._count(event_type, "ignored")
            reason = (
                "no delivery status yet (null, or one not known to this gateway)"
                if event_type == "onDeliveryUpdated"
                else f"{event_type} is not tracked"
            )
            return 200, {"status": "ignored", "reason": reason}
        if self.account_sid and event.account_sid and event.account_sid != self.account_sid:
            # Signed with our auth token, yet about another account (a subaccount's, a copied configuration): a
            # 200 so that nobody retries it, and nothing of it reaches the ledger.
            self._count(event_type, "foreign_account")
            log.warning("webhook %s for account %s ignored: not this gateway's account", event_type, event.account_sid)
            return 200, {"status": "ignored", "reason": "AccountSid is not this gateway's account"}
        await self.processor.admit()  # waits while acknowledged events wait to be applied at the backlog's limit
        try:
            entry_id = await self.ledger.inbox_add(compact_json(params))
        except Exception:
            log.exception("could not record webhook %s", event_type)
            self._count(event_type, "unavailable")
            return 503, {"error": "ledger unavailable; retry"}
        self.processor.submit(entry_id, event)
        self._count(event_type, "accepted")
        return 200, ACCEPTED


async def _read_form(request: Request, content_type: str) -> SignedParams:
    """Every (name, value) of the body. URL-encoded (what Twilio sends) is read from the body in one call;
    multipart goes through Starlette's parser."""
    if content_type == "application/x-www-form-urlencoded":
        return SignedParams.of(parse_urlencoded(await request.body()))
    form = await request.form()
    return SignedParams.of((key, str(value)) for key, value in form.multi_items())
