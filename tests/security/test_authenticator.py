"""Credential → Caller: static keys, Access Tokens, demo mode, WebSocket connection_init payloads.

Unit tests only; never opens a socket.
"""

from __future__ import annotations

import logging

import pytest

from delivery_gateway.auth import AuthenticationFailed, Authenticator, bearer_credential, key_label
from delivery_gateway.kernel.callers import DEMO_CALLER, CallerKind
from tests.security.conftest import API_KEY, SERVICE, make_settings, mint


def auth(**overrides) -> Authenticator:
    return Authenticator.from_settings(make_settings(**overrides))


def test_static_key_is_internal_with_a_non_reversible_label() -> None:
    caller = auth().authenticate(f"Bearer {API_KEY}")
    assert caller.kind is CallerKind.INTERNAL and caller.full_access
    assert caller.identity == key_label(API_KEY) and API_KEY not in caller.identity


def test_any_of_several_keys() -> None:
    authenticator = auth(DELIVERY_GATEWAY_API_KEYS="first-key-aaaaaaaa, second-key-bbbbbbbb")
    assert authenticator.authenticate("Bearer second-key-bbbbbbbb").kind is CallerKind.INTERNAL
    assert authenticator.authenticate("bearer first-key-aaaaaaaa").kind is CallerKind.INTERNAL
    with pytest.raises(AuthenticationFailed):
        authenticator.authenticate("Bearer second-key-bbbbbbb")  # prefix of a key


def test_access_token_is_participant_scoped() -> None:
    caller = auth().authenticate(f"Bearer {mint('alice')}")
    assert caller.kind is CallerKind.PARTICIPANT and not caller.full_access
    assert (caller.identity, caller.service_sid) == ("alice", SERVICE)


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Bearer", "Bearer ", "Basic abc", "Token x", API_KEY, "Bearer a b", "Bearer x.y.z"],
)
def test_missing_or_bad_credentials_fail(header: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        auth().authenticate(header)


def test_demo_mode_admits_anonymous_but_not_bad_credentials() -> None:
    demo = auth(DELIVERY_GATEWAY_DEMO_MODE=True)
    assert demo.authenticate(None) is DEMO_CALLER
    assert demo.authenticate_connection_params({}) is DEMO_CALLER
    with pytest.raises(AuthenticationFailed):
        demo.authenticate("Bearer wrong")
    assert demo.authenticate(f"Bearer {mint('alice')}").kind is CallerKind.PARTICIPANT


def test_connection_params() -> None:
    authenticator = auth()
    token = mint("alice")
    caller = authenticator.authenticate_connection_params({"Authorization": f"Bearer {token}"})
    assert caller.identity == "alice"
    assert authenticator.authenticate_connection_params({"authorization": f"Bearer {API_KEY}"}).full_access
    for payload in (None, {}, {"Authorization": 42}, {"Authorization": token}, ["Bearer x"], "Bearer x"):
        with pytest.raises(AuthenticationFailed):
            authenticator.authenticate_connection_params(payload)


def test_bearer_credential_parsing() -> None:
    assert bearer_credential("Bearer abc") == "abc"
    assert bearer_credential("  bearer   abc  ") == "abc"
    with pytest.raises(AuthenticationFailed):
        bearer_credential("Bearer " + "a" * 9000)


def test_failures_never_log_the_credential(caplog: pytest.LogCaptureFixture) -> None:
    token = mint("alice", secret="z" * 40)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationFailed) as info:
        auth().authenticate(f"Bearer {token}")
    assert token not in caplog.text and token not in str(info.value)
    assert "bad signature" in caplog.text
