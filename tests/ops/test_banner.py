"""The start-up banner: what it shows (masked), and the one WARNING line per unsafe setting.

Builds reports from Settings only; no server, no network.
"""

from __future__ import annotations

from typing import Any

import pytest

from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ops.banner import build_report, unsafe_settings

ACCOUNT = "AC" + "0" * 28 + "9f3e"
AUTH_TOKEN = "auth-token-do-not-print"
API_KEY = "internal-key-0123456789abcdef"
KEY_SID, KEY_SECRET = "SK" + "c3" * 16, "signing-secret-do-not-print"
REDIS_PASSWORD = "redis-pass-do-not-print"
SERVICE = "IS" + "e5" * 16
EMULATOR = "http://127.0.0.1:8099"


def make(**values: Any) -> Settings:
    base: dict[str, Any] = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    base.update(values)
    return Settings(_env_file=None, **base)


def production(**values: Any) -> Settings:
    """A configuration with nothing to warn about (on a loopback bind, behind a proxy)."""
    safe: dict[str, Any] = {
        "DELIVERY_GATEWAY_API_KEYS": API_KEY,
        "DELIVERY_GATEWAY_INTROSPECTION": False,
        "DELIVERY_GATEWAY_GRAPHIQL": False,
        "DELIVERY_GATEWAY_PUBLIC_URL": "https://gateway.example.com",
    }
    safe.update(values)
    return make(**safe)


def test_the_banner_names_every_part_and_masks_every_credential(tmp_path) -> None:
    settings = make(
        TWILIO_API_KEY=KEY_SID,
        TWILIO_API_SECRET=KEY_SECRET,
        DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{KEY_SID}:{KEY_SECRET}",
        DELIVERY_GATEWAY_API_KEYS=f"{API_KEY},{API_KEY}-2",
        DELIVERY_GATEWAY_CHAT_SERVICE_SIDS=SERVICE,
        DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3",
        DELIVERY_GATEWAY_CACHE_URL=f"redis://:{REDIS_PASSWORD}@cache:6379/0?prefix=dg:prod:",
        DELIVERY_GATEWAY_PUBSUB_URL="memory://",
        DELIVERY_GATEWAY_PUBLIC_URL="https://gateway.example.com",
        DELIVERY_GATEWAY_READY_CHECKS_UPSTREAM=True,
        DELIVERY_GATEWAY_LOG_FORMAT="json",
        DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS="10.0.0.1",
    )
    report = build_report(settings, host="127.0.0.1", port=8000)
    lines = dict(report.lines)
    assert lines["upstream"].startswith("https://conversations.twilio.com, account AC…9f3e")
    assert "API key SK…c3c3" in lines["upstream"]
    assert lines["ledger"] == f"SQLite file {tmp_path}/ledger.sqlite3"
    assert lines["cache"] == "redis://:***@cache:6379/0?prefix=dg:prod:"
    assert lines["pub/sub"] == "memory:// (in this process only)"
    assert lines["callers"] == "2 API keys; Access Tokens: 1 signing key, chat services: IS…e5e5"
    assert lines["GraphQL"].startswith("http://127.0.0.1:8000/graphql; GraphiQL on, introspection on")
    assert lines["demo page"] == "off"
    assert lines["public URL"] == (
        "https://gateway.example.com (webhook signatures are checked against it); "
        "X-Forwarded-Proto/-Host/-For honoured from 10.0.0.1"
    )
    assert "Twilio credentials (one call a minute at most)" in lines["readiness"]
    assert lines["logs"].startswith("json, level info")
    shown = report.text() + str(report.fields()) + " ".join(report.warnings)
    for secret in (AUTH_TOKEN, API_KEY, KEY_SECRET, REDIS_PASSWORD, ACCOUNT):
        assert secret not in shown


def test_reconciliation_says_whether_it_is_on_and_its_period() -> None:
    line = dict(build_report(make(), host="127.0.0.1", port=1).lines)["reconciliation"]
    assert line == "every 60 s, receipts up to 24 h old, 16 of 64 upstream calls at most"
    tuned = make(DELIVERY_GATEWAY_RECONCILE_SECONDS="0.5", DELIVERY_GATEWAY_RECONCILE_WINDOW="7200")
    line = dict(build_report(tuned, host="127.0.0.1", port=1).lines)["reconciliation"]
    assert line == "every 0.5 s, receipts up to 2 h old, 16 of 64 upstream calls at most"
    off = make(DELIVERY_GATEWAY_RECONCILE_SECONDS="0")
    line = dict(build_report(off, host="127.0.0.1", port=1).lines)["reconciliation"]
    assert line.startswith("off (DELIVERY_GATEWAY_RECONCILE_SECONDS=0)")


def test_demo_mode_says_so_in_callers_and_warns() -> None:
    settings = make(DELIVERY_GATEWAY_DEMO_MODE=True, DELIVERY_GATEWAY_TWILIO_BASE_URL=EMULATOR)
    report = build_report(settings, host="127.0.0.1", port=8000)
    assert dict(report.lines)["callers"] == "demo mode: anyone, without credentials"
    assert dict(report.lines)["demo page"] == "http://127.0.0.1:8000/demo"
    assert any(w.startswith("DELIVERY_GATEWAY_DEMO_MODE is on") for w in report.warnings)


def test_a_safe_production_configuration_has_no_warning() -> None:
    assert unsafe_settings(production(), host="127.0.0.1") == []
    behind_proxy = production(DELIVERY_GATEWAY_PUBLIC_URL=None, DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS="10.0.0.0/8")
    assert unsafe_settings(behind_proxy, host="127.0.0.1") == []


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ({}, "not set: webhook signatures are checked against each request's own URL; forwarded headers ignored"),
        (
            {"DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.5"},
            "from the proxy: webhook signatures are checked against the URL its forwarded headers name; "
            "X-Forwarded-Proto/-Host/-For honoured from 10.0.0.0/8, 192.168.1.5",
        ),
        (
            {"DELIVERY_GATEWAY_PUBLIC_URL": "https://gw.example.com/"},
            "https://gw.example.com (webhook signatures are checked against it); forwarded headers ignored",
        ),
    ],
)
def test_the_banner_says_which_url_webhook_signatures_are_checked_against(values: dict, shown: str) -> None:
    report = build_report(make(DELIVERY_GATEWAY_TWILIO_BASE_URL=EMULATOR, **values), host="127.0.0.1", port=8000)
    assert dict(report.lines)["public URL"] == shown


def test_a_proxy_address_that_is_no_address_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'gateway-proxy' is not an IP address or network"):
        make(DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS="10.0.0.1,gateway-proxy")


@pytest.mark.parametrize(
    ("settings", "host", "names"),
    [
        (production(DELIVERY_GATEWAY_INTROSPECTION=True), "127.0.0.1", "DELIVERY_GATEWAY_INTROSPECTION"),
        (production(DELIVERY_GATEWAY_GRAPHIQL=True), "127.0.0.1", "DELIVERY_GATEWAY_GRAPHIQL"),
        (production(DELIVERY_GATEWAY_API_KEYS=""), "127.0.0.1", "DELIVERY_GATEWAY_API_KEYS"),
        (production(), "0.0.0.0", "/metrics"),
        (production(), "::", "/metrics"),
        (production(DELIVERY_GATEWAY_ALLOWED_ORIGINS="*"), "127.0.0.1", "DELIVERY_GATEWAY_ALLOWED_ORIGINS"),
        (production(DELIVERY_GATEWAY_API_KEYS="short"), "127.0.0.1", "DELIVERY_GATEWAY_API_KEYS"),
        (production(DELIVERY_GATEWAY_STORE_URL="memory://"), "127.0.0.1", "DELIVERY_GATEWAY_STORE_URL"),
        (production(DELIVERY_GATEWAY_TWILIO_BASE_URL="http://twilio-mock.internal"), "::1", "TWILIO_BASE_URL"),
        (production(DELIVERY_GATEWAY_PUBLIC_URL="http://gateway.example.com"), "127.0.0.1", "PUBLIC_URL"),
        (production(DELIVERY_GATEWAY_PUBLIC_URL=None), "127.0.0.1", "DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS"),
    ],
)
def test_each_unsafe_setting_gives_one_warning_naming_it(settings: Settings, host: str, names: str) -> None:
    warnings = unsafe_settings(settings, host=host)
    assert len(warnings) == 1, warnings
    assert names in warnings[0]


def test_ide_and_introspection_are_fine_against_an_emulator() -> None:
    settings = production(
        DELIVERY_GATEWAY_INTROSPECTION=True, DELIVERY_GATEWAY_GRAPHIQL=True, DELIVERY_GATEWAY_TWILIO_BASE_URL=EMULATOR
    )
    assert unsafe_settings(settings, host="127.0.0.1") == []


def test_access_tokens_alone_are_a_way_in() -> None:
    settings = production(DELIVERY_GATEWAY_API_KEYS="", DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{KEY_SID}:{KEY_SECRET}")
    assert unsafe_settings(settings, host="127.0.0.1") == []
