"""The hardening settings read from the environment: formats, validation, and secrets kept out of repr.

Unit tests only.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from delivery_gateway.kernel.settings import Settings

KEY_A, KEY_B = "SK" + "a" * 32, "SK" + "b" * 32


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS", f"{KEY_A}:first-secret, {KEY_B}:with:colons")
    monkeypatch.setenv("DELIVERY_GATEWAY_CHAT_SERVICE_SIDS", "IS" + "c" * 32)
    monkeypatch.setenv("DELIVERY_GATEWAY_ALLOWED_ORIGINS", "https://app.example, http://localhost:3000")
    monkeypatch.setenv("TWILIO_API_KEY", "SK" + "d" * 32)
    monkeypatch.setenv("TWILIO_API_SECRET", "primary-secret")
    settings = Settings(_env_file=None)
    # One meaning per setting: the API key pair is the REST credential, never an Access Token signer.
    assert settings.signing_keys() == {KEY_A: "first-secret", KEY_B: "with:colons"}
    assert settings.rest_credentials() == ("SK" + "d" * 32, "primary-secret")
    assert settings.chat_service_sids == ["IS" + "c" * 32]
    assert settings.allowed_origins == ["https://app.example", "http://localhost:3000"]
    assert "first-secret" not in repr(settings) and "primary-secret" not in repr(settings)


def test_defaults_are_safe() -> None:
    settings = Settings(_env_file=None)
    assert settings.allowed_origins == [] and settings.signing_keys() == {}
    assert settings.max_page_size == 100 and settings.max_query_cost >= 100
    assert not settings.demo_mode


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS", "SKnot-a-sid:secret"),
        ("DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS", f"{KEY_A}"),
        ("DELIVERY_GATEWAY_CHAT_SERVICE_SIDS", "CH" + "c" * 32),
        ("DELIVERY_GATEWAY_ALLOWED_ORIGINS", "https://app.example/path"),
        ("DELIVERY_GATEWAY_ALLOWED_ORIGINS", "app.example"),
        ("DELIVERY_GATEWAY_MAX_BODY_BYTES", "10"),
        ("DELIVERY_GATEWAY_TOKEN_LEEWAY", "3600"),
    ],
)
def test_invalid_values_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{name: value})
