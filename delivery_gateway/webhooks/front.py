"""The webhook route's lean path: a signed URL-encoded `POST /webhooks/twilio` handled whole by one ASGI layer in
front of the guard stack, with the guards' own rules, instead of passing eight middleware layers and Starlette's
request and response objects (about half of the CPU an ingested event cost).

What it applies, each from the code the full stack uses: the correlation id (`X-Request-ID`, the request's log
line, the context variable logs read), the headers CORS adds for the request's `Origin`
(`http/guards.OriginPolicy`, handed in), the webhook body limit (announced size and bounded read: 413, 408), and the
endpoint's one rule (`TwilioWebhookEndpoint.ingest`: signature verified once, validation, durable inbox write
before the 200). What it leaves to the full stack unchanged: any other method or path, a WebSocket, a body that is
not URL-encoded (multipart), an unannounced, malformed or oversize Content-Length, a missing signature, and
anything the full stack answers with an error of its own. The request-log layer stays outside it (one log line
per request, as before); stream draining has nothing to do for a webhook (it tracks streams only).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.datastructures import URL
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery_gateway.http.exchange import (
    CORRELATION_HEADER,
    CORRELATION_SCOPE_KEY,
    correlation_id_for,
    read_bounded_body,
    reset_correlation_id,
    set_correlation_id,
)
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.webhooks.endpoint import ACCEPTED, TwilioWebhookEndpoint
from delivery_gateway.webhooks.parse import parse_urlencoded
from delivery_gateway.webhooks.signature import SignedParams, called_url

URLENCODED = b"application/x-www-form-urlencoded"
# (Origin header or None, a Cookie header was sent) -> the headers CORS adds to an ordinary response
CorsHeaders = Callable[[bytes | None, bool], Awaitable[list[tuple[bytes, bytes]]]]
_JSON_TYPE = (b"content-type", b"application/json")


def render_json(payload: dict[str, str]) -> bytes:
    """The body Starlette's JSONResponse would send for `payload` (same separators and escaping)."""
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


_ACCEPTED_BODY = render_json(ACCEPTED)


class WebhookFront:
    """Handles signed URL-encoded POSTs to `path` (the webhook route) itself; passes everything else through."""

    def __init__(
        self, app: ASGIApp, *, endpoint: TwilioWebhookEndpoint, settings: Settings, path: str, cors_headers: CorsHeaders
    ) -> None:
        """`cors_headers`: the origin policy's (`http.guards.OriginPolicy.cors_headers`), handed in by the app
        factory: this package never imports the policy (it parses origins with Strawberry's helpers)."""
        self.app = app
        self.endpoint = endpoint
        self.path = path
        self.limit = settings.max_webhook_bytes
        self.read_timeout = settings.body_read_timeout
        self.cors_headers = cors_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = length = signature = settings_header = request_id = origin = None
        cookie = False
        for name, value in scope["headers"]:  # one pass; ASGI servers give header names in lower case
            # The first of repeated headers, as Starlette's `Headers.get` (the route's reading) takes it.
            if name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"content-length":
                length = value if length is None else length
            elif name == b"x-twilio-signature":
                signature = value if signature is None else signature
            elif name == b"x-twilio-webhooks-signature-settings":
                settings_header = value if settings_header is None else settings_header
            elif name == CORRELATION_HEADER:
                request_id = value if request_id is None else request_id
            elif name == b"origin":
                origin = value if origin is None else origin
            elif name == b"cookie":
                cookie = True
        if (
            not signature
            or content_type is None
            or content_type.split(b";", 1)[0].strip().lower() != URLENCODED
            or length is None
            or not length.isdigit()  # what the guards refuse (400) or must bound while reading (chunked)
            or int(length) > self.limit
        ):
            await self.app(scope, receive, send)  # the full stack answers exactly as it always did
            return
        correlation_id = correlation_id_for(request_id.decode("latin-1") if request_id is not None else None)
        headers = [*await self.cors_headers(origin, cookie), (CORRELATION_HEADER, correlation_id.encode())]
        scope[CORRELATION_SCOPE_KEY] = correlation_id  # for the request's log line
        token = set_correlation_id(correlation_id)
        try:
            body = await read_bounded_body(receive, _with_headers(send, headers), self.limit, self.read_timeout)
            if body is None:
                return  # the client left, or was answered (413, 408)
            endpoint = self.endpoint
            try:
                form = SignedParams.of(parse_urlencoded(body))
            except Exception as exc:
                status, payload = endpoint.unreadable(exc)
            else:
                status, payload = await endpoint.ingest(
                    form,
                    url=_called_url(scope, endpoint.public_url),
                    signature=signature.decode("latin-1"),
                    settings_header=settings_header.decode("latin-1") if settings_header is not None else None,
                )
            content = _ACCEPTED_BODY if payload is ACCEPTED else render_json(payload)
            start: Message = {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), _JSON_TYPE, *headers],
            }
            await send(start)
            await send({"type": "http.response.body", "body": content})
        finally:
            reset_correlation_id(token)


def _called_url(scope: Scope, public_url: str | None) -> str:
    """`signature.called_url` of the request, without building Starlette's URL when the public URL names the
    host and the path needs no escaping (the usual webhook: `public_url` + `/webhooks/twilio`)."""
    path: str = scope["path"]
    if not public_url or scope.get("query_string") or any(c in path for c in "?#\\"):
        return called_url(URL(scope=scope), public_url)
    return public_url.rstrip("/") + path


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send` adding the CORS and correlation headers to a guard's own answer (413, 408), as the full stack would."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return send_with_headers
