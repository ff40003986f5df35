"""X-Twilio-Signature is checked with hmac directly (webhooks/signature.py), not through twilio's RequestValidator:
it must accept exactly what the validator accepts, for every form, URL spelling and algorithm Twilio signs with."""

from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

from delivery_gateway.webhooks.signature import SignedParams, signature_valid

TOKEN = "test-auth-token"
URL = "https://gateway.example.com/webhooks/twilio"
TEXT = st.text(alphabet=st.sampled_from("aZ09 +%&=é\u00ff\u4e2d:-_."), max_size=6)
FORMS = st.lists(st.tuples(st.sampled_from(["EventType", "Status", "Body", "a", "é", ""]), TEXT), max_size=8)


def header(algorithm: str) -> str:
    return f"key=webhooks_sharedkey_1,algorithm={algorithm}"


@settings(max_examples=300, deadline=None)
@given(FORMS, st.sampled_from([HMAC_SHA1, HMAC_SHA256]), st.booleans())
def test_what_twilios_validator_signs_verifies_and_nothing_else(items, algorithm, named):
    """Repeated names, repeated values, any order: the validator's signature (its multi-valued form reading) is
    accepted, with the algorithm named by the settings header or SHA-1 by default; a changed one is refused."""
    if not named:
        algorithm = HMAC_SHA1
    form = SignedParams.of(items)
    signature = RequestValidator(TOKEN).compute_signature(URL, form, algorithm)
    settings_header = header(algorithm) if named else None
    assert signature_valid(TOKEN, URL, form, signature, settings_header)
    assert RequestValidator(TOKEN).validate(URL, form, signature, algorithm)
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert not signature_valid(TOKEN, URL, form, forged, settings_header)
    assert not signature_valid("another-token", URL, form, signature, settings_header)
    assert not signature_valid(TOKEN, URL + "x", form, signature, settings_header)


def test_the_url_with_or_without_its_default_port_verifies_as_the_validator_allows():
    form = SignedParams.of([("EventType", "onDeliveryUpdated"), ("Status", "read")])
    with_port = "https://gateway.example.com:443/webhooks/twilio"
    for signed_url, called in ((with_port, URL), (URL, with_port)):
        signature = RequestValidator(TOKEN).compute_signature(signed_url, form)
        assert RequestValidator(TOKEN).validate(called, form, signature)
        assert signature_valid(TOKEN, called, form, signature)
    other_port = RequestValidator(TOKEN).compute_signature("https://gateway.example.com:8443/webhooks/twilio", form)
    assert not signature_valid(TOKEN, URL, form, other_port)


def test_no_token_no_signature_or_an_unknown_algorithm_is_refused(caplog):
    form = SignedParams.of([("EventType", "onDeliveryUpdated")])
    signature = RequestValidator(TOKEN).compute_signature(URL, form)
    assert not signature_valid(None, URL, form, signature)
    assert not signature_valid(TOKEN, URL, form, "")
    with caplog.at_level(logging.WARNING):
        assert not signature_valid(TOKEN, URL, form, signature, header("HMAC_MD5"))
    assert "Unsupported webhook signature algorithm" in caplog.text
    assert signature_valid(TOKEN, URL, form, signature, header("hmac_sha1"))  # the validator upper-cases it
