"""Twilio Access Token verification: every claim the gateway checks, and rotation of signing keys.

Unit tests only; never opens a socket.
"""

from __future__ import annotations

import time

import jwt
import pytest

from delivery_gateway.auth import TokenRejected, TwilioTokenVerifier
from tests.security.conftest import (
    ACCOUNT,
    KEY,
    OLD_KEY,
    OLD_SECRET,
    OTHER_ACCOUNT,
    OTHER_SERVICE,
    SECRET,
    SERVICE,
    mint,
)


def verifier(**overrides) -> TwilioTokenVerifier:
    values = {"account_sid": ACCOUNT, "signing_keys": {KEY: SECRET, OLD_KEY: OLD_SECRET}, "leeway": 10}
    values.update(overrides)
    return TwilioTokenVerifier(**values)


def test_valid_token_yields_identity_and_service() -> None:
    verified = verifier().verify(mint("alice"))
    assert (verified.identity, verified.service_sid, verified.key_sid) == ("alice", SERVICE, KEY)


def test_rotated_key_still_accepted_and_secret_chosen_by_issuer() -> None:
    assert verifier().verify(mint("bob", key=OLD_KEY, secret=OLD_SECRET)).key_sid == OLD_KEY
    with pytest.raises(TokenRejected, match="bad signature"):
        verifier().verify(mint("bob", key=OLD_KEY, secret=SECRET))  # right issuer, other key's secret


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [
        ({"key": "SK" + "9" * 32}, "unknown issuer"),
        ({"secret": "x" * 40}, "bad signature"),
        ({"account": OTHER_ACCOUNT}, "another account"),
        ({"service": None}, "no chat grant"),
        ({"ttl": -60}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
def test_rejections(token_kwargs: dict, reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        verifier().verify(mint(**token_kwargs))


def test_small_leeway_for_clock_skew() -> None:
    token = mint(ttl=-5)  # expired five seconds ago
    assert verifier(leeway=10).verify(token).identity == "alice"
    with pytest.raises(TokenRejected, match="expired"):
        verifier(leeway=0).verify(token)


def test_service_restriction() -> None:
    assert verifier(allowed_services=[SERVICE]).verify(mint()).service_sid == SERVICE
    with pytest.raises(TokenRejected, match="service not allowed"):
        verifier(allowed_services=[SERVICE]).verify(mint(service=OTHER_SERVICE))


def _forge(header: dict, claims: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm, headers=header)


def _claims(**overrides) -> dict:
    claims = {
        "iss": KEY,
        "sub": ACCOUNT,
        "exp": int(time.time()) + 600,
        "grants": {"identity": "alice", "chat": {"service_sid": SERVICE}},
    }
    claims.update(overrides)
    return claims


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_requires_twilio_content_type_and_hs256() -> None:
    with pytest.raises(TokenRejected, match="cty"):
        verifier().verify(_forge({}, _claims()))
    unsigned = jwt.encode(_claims(), None, algorithm="none", headers={"cty": "twilio-fpa;v=1"})
    with pytest.raises(TokenRejected, match="algorithm"):
        verifier().verify(unsigned)
    with pytest.raises(TokenRejected, match="algorithm"):
        verifier().verify(_forge({"cty": "twilio-fpa;v=1"}, _claims(), algorithm="HS512"))


@pytest.mark.parametrize(
    "claims",
    [
        _claims(exp=None),
        _claims(grants=None),
        _claims(grants={"chat": {"service_sid": SERVICE}}),
        _claims(grants={"identity": "", "chat": {"service_sid": SERVICE}}),
        _claims(grants={"identity": 5, "chat": {"service_sid": SERVICE}}),
        _claims(grants={"identity": "alice", "chat": {"service_sid": "IS123"}}),
        _claims(grants={"identity": "alice", "chat": "yes"}),
        _claims(sub=None),
    ],
)
def test_malformed_claims_rejected(claims: dict) -> None:
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(TokenRejected):
        verifier().verify(_forge({"cty": "twilio-fpa;v=1"}, claims))


def test_disabled_without_account_or_keys_and_long_tokens_refused() -> None:
    with pytest.raises(TokenRejected, match="not accepted"):
        verifier(account_sid=None).verify(mint())
    with pytest.raises(TokenRejected, match="not accepted"):
        verifier(signing_keys={}).verify(mint())
    with pytest.raises(TokenRejected, match="too long"):
        verifier().verify("a" * 10_000)


def test_rejection_reason_never_quotes_the_token() -> None:
    token = mint(secret="y" * 40)
    with pytest.raises(TokenRejected) as info:
        verifier().verify(token)
    assert token not in str(info.value)
    assert token.split(".")[2] not in str(info.value)


def test_a_grant_without_a_service_means_the_default_service() -> None:
    verified = verifier().verify(_forge({"cty": "twilio-fpa;v=1"}, _claims(grants={"identity": "al", "chat": {}})))
    assert (verified.identity, verified.service_sid) == ("al", None)  # graphql/access.py resolves the default
    with pytest.raises(TokenRejected, match="no valid service"):
        verifier().verify(
            _forge({"cty": "twilio-fpa;v=1"}, _claims(grants={"identity": "al", "chat": {"service_sid": 5}}))
        )


def test_audience_is_checked_when_present() -> None:
    header = {"cty": "twilio-fpa;v=1"}
    assert verifier().verify(_forge(header, _claims())).identity == "alice"  # no `aud`, as Twilio's SDKs mint them
    with pytest.raises(TokenRejected, match="audience"):
        verifier().verify(_forge(header, _claims(aud="https://another-app.example")))
    ours = verifier(audiences=["https://gateway.example"])
    assert ours.verify(_forge(header, _claims(aud=["x", "https://gateway.example"]))).identity == "alice"
    with pytest.raises(TokenRejected, match="audience"):
        ours.verify(_forge(header, _claims(aud="https://another-app.example")))


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"nbf": 1_000, "exp": 1_000 + 86400}, True),  # Twilio's maximum (the helper libraries set nbf = now)
        ({"nbf": 1_000, "exp": 1_000 + 86400 + 3600}, False),
        ({"iat": 1_000, "exp": 1_000 + 2 * 86400}, False),
        ({"exp": 90 * 86400}, False),  # no start claim: measured from now
        ({"exp": 3600}, True),
    ],
)
def test_lifetime_is_capped_at_twilios_24_hours(claims: dict, accepted: bool) -> None:
    now = int(time.time())
    shifted = {name: now - 1_000 + value for name, value in claims.items()}  # nbf/iat = now
    token = _forge({"cty": "twilio-fpa;v=1"}, _claims(**shifted))
    if accepted:
        assert verifier().verify(token).identity == "alice"
    else:
        with pytest.raises(TokenRejected, match="24-hour"):
            verifier().verify(token)
    assert accepted == (claims.get("exp", 0) - claims.get("nbf", claims.get("iat", 0)) <= 86400)


def test_expired_tokens_say_so() -> None:
    with pytest.raises(TokenRejected) as info:
        verifier().verify(mint(ttl=-60))
    assert info.value.expired
    with pytest.raises(TokenRejected) as info:
        verifier().verify(mint(secret="x" * 40))
    assert not info.value.expired
