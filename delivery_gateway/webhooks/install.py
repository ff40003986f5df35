"""Points Twilio's post-event webhooks at the gateway: URL, method POST and every event the gateway tracks
(`delivery-gateway webhooks install`), and finds the services whose own configuration hides it.

Twilio: "If configured, service-scoped webhooks will override your global webhook settings such that only the
service-scoped hooks will fire. This applies only to the services where service-level hooks are configured."
(Per-Service Webhook resource, https://www.twilio.com/docs/conversations/api/per-service-webhook-resource). So an
account-level install alone misses every conversation of a service with hooks of its own.

Never touches pre-event webhooks or any other setting, never changes a service's configuration unless asked to,
and always reports what was configured before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from delivery_gateway.kernel.records import ServiceRecord, WebhookConfigRecord
from delivery_gateway.upstream.api import ConversationsAPI
from delivery_gateway.webhooks.parse import SUPPORTED_EVENTS

WEBHOOK_FILTERS: list[str] = list(SUPPORTED_EVENTS)


@dataclass(frozen=True)
class Change:
    """One webhook configuration the command wrote: the account's (`service` None) or a service's."""

    service: ServiceRecord | None
    before: WebhookConfigRecord
    after: WebhookConfigRecord


@dataclass(frozen=True)
class HiddenService:
    """A service whose own webhook configuration fires instead of the account's, and does not reach the gateway."""

    service: ServiceRecord
    config: WebhookConfigRecord

    def why(self) -> str:
        config = self.config
        if config.post_webhook_url:
            return (
                f"its own post-event webhook ({config.post_webhook_url}, filters {', '.join(config.filters) or 'none'}"
                ") replaces the account's"
            )
        return f"its own pre-event webhook ({config.pre_webhook_url}) replaces the account's webhooks"


@dataclass
class InstallReport:
    changes: list[Change] = field(default_factory=list)
    hidden: list[HiddenService] = field(default_factory=list)  # services still not delivering to the gateway


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"--url: {url!r} is not an absolute http(s) URL")


def delivers_to(config: WebhookConfigRecord, url: str) -> bool:
    """Whether `config` posts every event the gateway tracks to `url`."""
    return (
        config.post_webhook_url == url
        and (config.method or "POST").upper() == "POST"
        and set(WEBHOOK_FILTERS) <= set(config.filters)
    )


def overrides_account(config: WebhookConfigRecord) -> bool:
    """A service-level configuration "is configured" once it names a URL (a pre-event one alone counts: Twilio's
    sentence does not restrict it to post-event hooks, and assuming it does would silently lose webhooks)."""
    return bool(config.post_webhook_url or config.pre_webhook_url)


async def _point_at(
    upstream: ConversationsAPI, url: str, service: ServiceRecord | None, before: WebhookConfigRecord | None = None
) -> Change:
    sid = service.sid if service is not None else None
    if before is None:
        before = await upstream.fetch_webhook_config(service_sid=sid)
    after = await upstream.update_webhook_config(
        service_sid=sid, post_webhook_url=url, method="POST", filters=WEBHOOK_FILTERS
    )
    return Change(service, before, after)


async def hidden_services(upstream: ConversationsAPI, url: str) -> list[HiddenService]:
    """Services whose own configuration overrides the account's without delivering to `url` (one list call, one
    configuration read per service)."""
    hidden = []
    for service in await upstream.list_services():
        config = await upstream.fetch_webhook_config(service_sid=service.sid)
        if overrides_account(config) and not delivers_to(config, url):
            hidden.append(HiddenService(service, config))
    return hidden


async def install_webhooks(
    upstream: ConversationsAPI, url: str, service_sid: str | None = None, *, services: bool = False
) -> InstallReport:
    """Point the account's (or one service's) post-event webhook at `url`. For the account, also find the services
    whose own configuration hides it; with `services`, point those at `url` too (replacing their post-event URL and
    filters, keeping their pre-event URL)."""
    check_url(url)
    report = InstallReport()
    if service_sid is not None:
        report.changes.append(await _point_at(upstream, url, ServiceRecord(sid=service_sid)))
        return report
    report.changes.append(await _point_at(upstream, url, None))
    for hidden in await hidden_services(upstream, url):
        if services:
            report.changes.append(await _point_at(upstream, url, hidden.service, hidden.config))
        else:
            report.hidden.append(hidden)
    return report
