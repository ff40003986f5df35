"""Points Twilio's post-event webhooks at the gateway: URL, method POST and every event the gateway tracks
(`delivery-gateway webhooks install`).

Never touches pre-event webhooks or any other setting, and always reports what was configured before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from delivery_gateway.kernel.records import WebhookConfigRecord
from delivery_gateway.upstream.api import ConversationsAPI
from delivery_gateway.webhooks.parse import SUPPORTED_EVENTS

WEBHOOK_FILTERS: list[str] = list(SUPPORTED_EVENTS)


async def install_webhooks(
    upstream: ConversationsAPI, url: str, service_sid: str | None = None
) -> tuple[WebhookConfigRecord, WebhookConfigRecord]:
    """(before, after) of the account's (or the service's) webhook configuration."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"--url: {url!r} is not an absolute http(s) URL")
    before = await upstream.fetch_webhook_config(service_sid=service_sid)
    after = await upstream.update_webhook_config(
        service_sid=service_sid, post_webhook_url=url, method="POST", filters=WEBHOOK_FILTERS
    )
    return before, after
