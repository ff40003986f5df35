"""Masking for operators: backend URLs lose their passwords, SIDs are shortened, secrets are scrubbed from text.

Pure; no services needed.
"""

from __future__ import annotations

import pytest

from delivery_gateway.kernel.redact import mask_sid, mask_url, scrub, url_secrets


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret-pw@cache:6379/0?prefix=dg:prod:", "redis://:***@cache:6379/0?prefix=dg:prod:"),
        ("rediss://gateway:s3cret-pw@cache:6380/1", "rediss://gateway:***@cache:6380/1"),
        ("postgresql://dg:s3cret-pw@db.internal/ledger", "postgresql://dg:***@db.internal/ledger"),
        ("postgresql://db/ledger?user=dg&password=s3cret-pw", "postgresql://db/ledger?user=dg&password=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:///var/lib/dg/ledger.sqlite3", "sqlite:///var/lib/dg/ledger.sqlite3"),
        ("memory://", "memory://"),
    ],
)
def test_mask_url_hides_passwords_and_keeps_the_rest(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "s3cret-pw" not in mask_url(url)


def test_url_secrets_and_scrub_remove_a_password_echoed_in_an_error() -> None:
    url = "redis://:s3cret-pw@cache:6379/0"
    message = f"Error connecting to {url}: refused"
    assert url_secrets(url) == ["s3cret-pw"]
    assert scrub(message, url_secrets(url)) == "Error connecting to redis://:***@cache:6379/0: refused"
    assert scrub("nothing to hide", [None, "", "ab"]) == "nothing to hide"  # too short to scrub safely


def test_mask_sid_keeps_prefix_and_last_four() -> None:
    assert mask_sid("AC" + "0" * 28 + "1a2b") == "AC…1a2b"
    assert mask_sid(None) == "(not set)"
    assert mask_sid("ACshort") == "AC…"
