"""The start-up banner of `serve`: what this process talks to and who may call it, and what is unsafe about it.

Built from the settings alone (plus where the process listens), so it can be printed before anything connects
and tested without a server. Never shows a credential: URLs are masked, SIDs shortened, keys only counted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlsplit

from delivery_gateway.kernel.redact import mask_sid, mask_url
from delivery_gateway.kernel.settings import Settings

# Settings other parts of the gateway add: the banner reads them once the settings define them. The bearer key that
# protects /metrics (DELIVERY_GATEWAY_METRICS_KEY; with it, /metrics on a public bind is no warning).
METRICS_KEY_FIELD = "metrics_key"
MIN_API_KEY_LENGTH = 16
TWILIO_API_HOST_SUFFIX = ".twilio.com"


@dataclass
class StartupReport:
    """`lines`: (label, value) pairs in display order; `warnings`: one sentence each, naming what to change."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        width = max((len(label) for label, _ in self.lines), default=0) + 1
        return "\n".join(f"  {label + ':':<{width}} {value}" for label, value in self.lines)

    def fields(self) -> dict[str, str]:
        return {label.replace(" ", "_").replace("/", "").lower(): value for label, value in self.lines}


def package_version() -> str:
    try:
        return version("delivery-gateway")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def _url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def uses_twilio(settings: Settings) -> bool:
    """True when the upstream is Twilio's own API (production data), not an emulator or a stand-in."""
    host = _url_host(settings.twilio_base_url)
    return host == TWILIO_API_HOST_SUFFIX[1:] or host.endswith(TWILIO_API_HOST_SUFFIX)


def describe_backend(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return "memory:// (in this process only)"
    if scheme == "sqlite":
        path = url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db -> rel.db, sqlite:////abs -> /abs
        return f"SQLite file {Path(path).resolve()}"
    return mask_url(url)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _callers(settings: Settings) -> str:
    if settings.demo_mode:
        return "demo mode: anyone, without credentials"
    signing = settings.signing_keys()
    services = ", ".join(mask_sid(sid) for sid in settings.chat_service_sids) or "any"
    parts = [
        _plural(len(settings.api_keys), "API key"),
        f"Access Tokens: {_plural(len(signing), 'signing key')}" + (f", chat services: {services}" if signing else ""),
    ]
    return "; ".join(parts)


def optional_setting(settings: Settings, field_name: str) -> object | None:
    """The value of a setting the settings may not define yet (None then): see METRICS_KEY_FIELD."""
    return getattr(settings, field_name) if field_name in Settings.model_fields else None


def _reconciliation(settings: Settings) -> str:
    """Whether lost webhooks are made up for, and how often: DELIVERY_GATEWAY_RECONCILE_SECONDS (0: off)."""
    seconds = settings.reconcile_seconds
    if not seconds:
        return "off (DELIVERY_GATEWAY_RECONCILE_SECONDS=0): a lost webhook is not made up for"
    return (
        f"every {seconds:g} s, receipts up to {settings.reconcile_window / 3600:g} h old, "
        f"{settings.reconcile_parallelism} of {settings.upstream_concurrency} upstream calls at most"
    )


def _response_cache(settings: Settings) -> str:
    if not settings.response_cache:
        return "off (DELIVERY_GATEWAY_RESPONSE_CACHE)"
    return (
        f"{describe_backend(settings.response_cache_store_url)}, answers kept up to {settings.response_cache_ttl:g} s, "
        "dropped by webhooks and mutations on every replica"
    )


def _forwarded(settings: Settings) -> str:
    if not settings.forwarded_allow_ips:
        return "forwarded headers ignored"
    return f"X-Forwarded-Proto/-Host/-For honoured from {', '.join(settings.forwarded_allow_ips)}"


def _public_url(settings: Settings) -> str:
    """Which URL webhook signatures are checked against, and whose forwarded headers count."""
    if settings.public_url:
        where = f"{settings.public_url} (webhook signatures are checked against it)"
    elif settings.forwarded_allow_ips:
        where = "from the proxy: webhook signatures are checked against the URL its forwarded headers name"
    else:
        where = "not set: webhook signatures are checked against each request's own URL"
    return f"{where}; {_forwarded(settings)}"


def build_report(settings: Settings, *, host: str, port: int) -> StartupReport:
    """The banner of a gateway about to listen on `host:port`."""
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    upstream = f"{settings.twilio_base_url}, account {mask_sid(settings.twilio_account_sid)}"
    if settings.twilio_api_key and settings.twilio_api_secret:
        upstream += f" (REST with API key {mask_sid(settings.twilio_api_key)})"
    graphql = (
        f"{base}/graphql; GraphiQL {'on' if settings.graphiql else 'off'}, "
        f"introspection {'on' if settings.introspection else 'off'}, "
        f"legacy graphql-ws {'on' if settings.legacy_graphql_ws else 'off'}"
    )
    readiness = "ledger, pub/sub, cache" + (
        ", Twilio credentials (one call a minute at most)" if settings.ready_checks_upstream else ""
    )
    report = StartupReport(
        title=f"delivery-gateway {package_version()} starting",
        lines=[
            ("upstream", upstream),
            ("ledger", describe_backend(settings.store_url)),
            ("cache", describe_backend(settings.cache_url)),
            ("pub/sub", describe_backend(settings.pubsub_url)),
            ("response cache", _response_cache(settings)),
            ("callers", _callers(settings)),
            ("reconciliation", _reconciliation(settings)),
            ("GraphQL", graphql),
            ("demo page", f"{base}/demo" if settings.demo_page_enabled else "off"),
            ("public URL", _public_url(settings)),
            ("readiness", f"{base}/readyz checks {readiness}"),
            ("logs", f"{settings.log_format}, level {settings.log_level}, one line per request"),
        ],
    )
    report.warnings = unsafe_settings(settings, host=host)
    return report


def unsafe_settings(settings: Settings, *, host: str) -> list[str]:
    """What an attacker or an accident could use, one sentence each, naming the setting that fixes it."""
    warnings: list[str] = []
    production = uses_twilio(settings)
    public = not is_loopback(host)
    if settings.demo_mode:
        warnings.append("DELIVERY_GATEWAY_DEMO_MODE is on: every caller gets full access without credentials")
    elif not settings.api_keys and not settings.signing_keys():
        warnings.append(
            "no caller can authenticate: set DELIVERY_GATEWAY_API_KEYS (internal services) or an Access Token "
            "signing key, DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS (apps); until then every GraphQL request gets 401"
        )
    if production and not settings.public_url and not settings.forwarded_allow_ips:
        # Twilio calls https and signs the URL it called; behind the TLS-terminating proxy that needs, the gateway
        # receives http://<its own address>, and would refuse every webhook (403) until one of these is set.
        warnings.append(
            "webhook signatures are checked against the URL each request arrived on: behind a proxy set "
            "DELIVERY_GATEWAY_PUBLIC_URL (the URL Twilio calls) or DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS (the "
            "proxy's addresses, whose X-Forwarded-Proto/-Host are honoured)"
        )
    if production and settings.introspection:
        warnings.append(
            "DELIVERY_GATEWAY_INTROSPECTION is on against Twilio: callers can read the whole schema; set it to false"
        )
    if production and settings.graphiql:
        warnings.append("DELIVERY_GATEWAY_GRAPHIQL is on against Twilio: /graphql serves the IDE; set it to false")
    if public and not optional_setting(settings, METRICS_KEY_FIELD):
        warnings.append(
            f"/metrics answers anyone who reaches {host}: block it at the proxy or firewall (it needs no credentials)"
        )
    if "*" in settings.allowed_origins:
        warnings.append(
            "DELIVERY_GATEWAY_ALLOWED_ORIGINS is '*': any web page may call the API with its visitors' credentials"
        )
    short = sum(1 for key in settings.api_keys if len(key.get_secret_value()) < MIN_API_KEY_LENGTH)
    if short:
        warnings.append(
            f"DELIVERY_GATEWAY_API_KEYS: {_plural(short, 'key')} shorter than {MIN_API_KEY_LENGTH} characters "
            "(easy to guess; use e.g. `openssl rand -hex 32`)"
        )
    if urlsplit(settings.store_url).scheme == "memory":
        warnings.append(
            "DELIVERY_GATEWAY_STORE_URL is memory://: webhook events and delivery history are lost on restart"
        )
    if urlsplit(settings.twilio_base_url).scheme == "http" and not is_loopback(_url_host(settings.twilio_base_url)):
        warnings.append(
            "DELIVERY_GATEWAY_TWILIO_BASE_URL is plain http to another host: Twilio credentials cross the network "
            "unencrypted"
        )
    if (
        settings.public_url
        and urlsplit(settings.public_url).scheme == "http"
        and not is_loopback(_url_host(settings.public_url))
    ):
        warnings.append("DELIVERY_GATEWAY_PUBLIC_URL is plain http: Twilio's webhooks to it travel unencrypted")
    return warnings
