"""Turns presented credentials (an `Authorization` value) into the `Caller` an operation runs under.

Never grants access on a failed check, never logs or echoes a credential: failures carry only a safe reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from delivery_gateway.auth.tokens import TokenRejected, TwilioTokenVerifier
from delivery_gateway.kernel.callers import DEMO_CALLER, Caller, CallerKind
from delivery_gateway.kernel.settings import Settings

log = logging.getLogger("delivery_gateway.auth")

MAX_CREDENTIAL_LENGTH = 8192
UNAUTHENTICATED = "UNAUTHENTICATED"
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # the Access Token was valid and has expired: fetch a fresh one and retry


class AuthenticationFailed(Exception):
    """No usable credentials. `reason` is safe to log and to show: it never contains the credential. `code` is
    what clients are told (`extensions.code` on HTTP, the close reason on WebSocket)."""

    def __init__(self, reason: str, *, code: str = UNAUTHENTICATED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def key_label(key: str) -> str:
    """A short, non-reversible label for a static key, safe for logs and for `Caller.identity`."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def bearer_credential(authorization: object) -> str:
    """The credential of an `Authorization: Bearer …` value; raises AuthenticationFailed otherwise."""
    if not isinstance(authorization, str) or not authorization.strip():
        raise AuthenticationFailed("missing credentials")
    if len(authorization) > MAX_CREDENTIAL_LENGTH:
        raise AuthenticationFailed("credentials too long")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise AuthenticationFailed("expected 'Authorization: Bearer <token>'")
    return credential


def bearer_matches(authorization: object, key: str) -> bool:
    """Whether an `Authorization` value is `Bearer <key>` (constant-time), for routes guarded by one static key."""
    try:
        credential = bearer_credential(authorization)
    except AuthenticationFailed:
        return False
    return hmac.compare_digest(credential.encode(), key.encode())


VERIFIED_MEMORY = 60.0  # seconds a verified credential is remembered (never past an Access Token's expiry)
VERIFIED_MEMORY_SIZE = 4096  # credentials remembered at most (least recently used out first)


def _token_expiry(credential: str) -> float | None:
    """The `exp` claim of a token the verifier has just accepted (its signature was checked; this only reads it)."""
    try:
        payload = credential.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        expires = claims.get("exp")
    except (IndexError, ValueError, binascii.Error, AttributeError):
        return None
    return float(expires) if isinstance(expires, int | float) else None


class Authenticator:
    """Static bearer keys (full access), then Twilio Access Tokens (participant), else demo or failure.

    A verified credential is remembered for `VERIFIED_MEMORY` seconds, and an Access Token never past its own `exp`,
    so a client repeating its `Authorization` header is not verified (an HMAC and a JWT decode) on every request;
    failures are never remembered.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (),
        account_sid: str | None = None,
        signing_keys: Mapping[str, str] | None = None,
        allowed_services: Iterable[str] = (),
        audiences: Iterable[str] = (),
        leeway: float = 10.0,
        demo_mode: bool = False,
    ) -> None:
        self._api_keys = [key.encode() for key in api_keys if key]
        self._tokens = TwilioTokenVerifier(
            account_sid=account_sid,
            signing_keys=signing_keys or {},
            allowed_services=allowed_services,
            audiences=audiences,
            leeway=leeway,
        )
        self.demo_mode = demo_mode
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()  # credential -> (caller, until)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            api_keys=[key.get_secret_value() for key in settings.api_keys],
            account_sid=settings.twilio_account_sid,
            signing_keys=settings.signing_keys(),
            allowed_services=settings.chat_service_sids,
            audiences=settings.token_audiences,
            leeway=settings.token_leeway,
            demo_mode=settings.demo_mode,
        )

    def _match_api_key(self, credential: str) -> str | None:
        presented = credential.encode()
        matched: bytes | None = None
        for key in self._api_keys:  # no early exit: every key is compared, in constant time each
            if hmac.compare_digest(presented, key):
                matched = key
        return key_label(matched.decode()) if matched is not None else None

    def authenticate_credential(self, credential: str) -> Caller:
        remembered = self._verified.get(credential)
        now = time.time()
        if remembered is not None:
            if remembered[1] > now:
                return remembered[0]
            del self._verified[credential]
        caller = self._verify(credential)
        until = now + VERIFIED_MEMORY
        if caller.kind is CallerKind.PARTICIPANT:
            expires = _token_expiry(credential)
            until = min(until, expires) if expires is not None else now
        if until > now:
            self._verified[credential] = (caller, until)
            if len(self._verified) > VERIFIED_MEMORY_SIZE:
                self._verified.popitem(last=False)
        return caller

    def _verify(self, credential: str) -> Caller:
        label = self._match_api_key(credential)
        if label is not None:
            return Caller(kind=CallerKind.INTERNAL, identity=label)
        if credential.count(".") != 2:
            raise AuthenticationFailed("invalid credentials")
        try:
            token = self._tokens.verify(credential)
        except TokenRejected as exc:
            log.info("access token rejected: %s", exc.reason)
            if exc.expired:
                raise AuthenticationFailed("access token expired", code=TOKEN_EXPIRED) from None
            if exc.code is not None:
                raise AuthenticationFailed(exc.reason, code=exc.code) from None
            raise AuthenticationFailed("invalid credentials") from None
        return Caller(kind=CallerKind.PARTICIPANT, identity=token.identity, service_sid=token.service_sid)

    def authenticate(self, authorization: object) -> Caller:
        """The caller for an `Authorization` value (None/absent allowed): demo mode admits anonymous callers.

        Presented-but-bad credentials fail even in demo mode, so a typo never silently downgrades a caller.
        """
        if authorization is None or (isinstance(authorization, str) and not authorization.strip()):
            if self.demo_mode:
                return DEMO_CALLER
            raise AuthenticationFailed("missing credentials")
        return self.authenticate_credential(bearer_credential(authorization))

    def authenticate_connection_params(self, payload: object) -> Caller:
        """The caller for a WebSocket `connection_init` payload: `{"Authorization": "Bearer …"}`."""
        authorization = None
        if isinstance(payload, dict):
            for name, value in payload.items():
                if isinstance(name, str) and name.lower() == "authorization":
                    authorization = value
                    break
        elif payload is not None:
            raise AuthenticationFailed("connection_init payload must be an object")
        return self.authenticate(authorization)
