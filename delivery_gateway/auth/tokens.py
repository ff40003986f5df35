"""Verification of Twilio Access Tokens (the JWT the Conversations SDK holds) into a participant identity.

Pure and synchronous; never performs I/O, never logs or returns the token or any secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jwt

from delivery_gateway.kernel.sids import is_sid

TWILIO_TOKEN_CONTENT_TYPE = "twilio-fpa;v=1"
MAX_TOKEN_LENGTH = 8192  # real Access Tokens are well under 2 KiB; anything longer is refused unparsed
# Twilio's Access Tokens live "up to 24 hours" (https://www.twilio.com/docs/iam/access-tokens); Twilio itself
# refuses one whose expiry is further out (error 20157, "Expiration Time Exceeds Maximum Time Allowed",
# https://www.twilio.com/docs/api/errors/20157). A longer-lived token was not minted for Twilio's SDKs.
MAX_TOKEN_LIFETIME = 86400
# What a client is told about a token minted to live longer (`extensions.code`, the WebSocket close reason): the
# signature was valid, so the holder is the app's own backend, which needs to lower its `ttl`, not a new token.
TOKEN_LIFETIME_EXCEEDED = "TOKEN_LIFETIME_EXCEEDED"


class TokenRejected(Exception):
    """The token is not one this gateway accepts. `reason` is safe to log: it never quotes the token; `expired`
    tells a client to fetch a fresh token rather than give up; `code`, when set, is a verdict on a token whose
    signature was valid, which the client may be told with its reason."""

    def __init__(self, reason: str, *, expired: bool = False, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired
        self.code = code


@dataclass(frozen=True)
class VerifiedToken:
    identity: str
    service_sid: str | None  # None: the grant names no service, which means the account's default service
    key_sid: str  # the API key that signed it (`iss`)


class TwilioTokenVerifier:
    """Checks signature (secret chosen by `iss`), expiry and lifetime, audience, issuer, account and chat grant."""

    def __init__(
        self,
        *,
        account_sid: str | None,
        signing_keys: Mapping[str, str],
        allowed_services: Iterable[str] = (),
        audiences: Iterable[str] = (),
        leeway: float = 10.0,
    ) -> None:
        self._account_sid = account_sid
        self._keys = dict(signing_keys)
        self._services = frozenset(allowed_services)
        self._audiences = list(audiences)
        self._leeway = leeway

    @property
    def enabled(self) -> bool:
        """Tokens can only be accepted when the account and at least one signing key are configured."""
        return bool(self._account_sid and self._keys)

    def verify(self, token: str) -> VerifiedToken:
        if not self.enabled:
            raise TokenRejected("access tokens are not accepted: no account SID or API key configured")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("token too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise TokenRejected(f"malformed token ({type(exc).__name__})") from None
        if header.get("alg") != "HS256":
            raise TokenRejected("unsupported algorithm")
        if header.get("cty") != TWILIO_TOKEN_CONTENT_TYPE:
            raise TokenRejected("not a Twilio Access Token (cty)")
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self._keys:
            raise TokenRejected("unknown issuer")
        try:
            claims = jwt.decode(
                token,
                self._keys[issuer],
                algorithms=["HS256"],
                issuer=issuer,
                leeway=self._leeway,
                # `aud` is optional (Twilio's SDKs mint none); when present it must name this gateway.
                audience=self._audiences or None,
                options={"require": ["exp", "iss", "sub"], "verify_aud": "aud" in unverified},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired", expired=True) from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad signature") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("token meant for another audience (aud)") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
        if claims.get("sub") != self._account_sid:
            raise TokenRejected("token is for another account")
        self._check_lifetime(claims)
        grants = claims.get("grants")
        if not isinstance(grants, dict):
            raise TokenRejected("no grants")
        identity = grants.get("identity")
        if not isinstance(identity, str) or not identity or len(identity) > 256:
            raise TokenRejected("no identity")
        chat = grants.get("chat")
        if not isinstance(chat, dict):
            raise TokenRejected("no chat grant")
        service_sid = chat.get("service_sid")
        # No service: "the default Chat Service instance underneath any Conversation", which Conversations tokens
        # authenticate with (https://www.twilio.com/docs/conversations/create-tokens); graphql/access.py resolves
        # it from the account's Configuration and scopes the caller to it.
        if service_sid is None:
            return VerifiedToken(identity=identity, service_sid=None, key_sid=issuer)
        if not isinstance(service_sid, str) or not is_sid(service_sid, "IS"):
            raise TokenRejected("chat grant names no valid service")
        if self._services and service_sid not in self._services:
            raise TokenRejected("chat service not allowed")
        return VerifiedToken(identity=identity, service_sid=service_sid, key_sid=issuer)

    def _check_lifetime(self, claims: Mapping[str, object]) -> None:
        """Refuse a token meant to live longer than Twilio allows: from `nbf` (or `iat`) when it says when it
        starts, else from now, to `exp`."""
        expires = claims.get("exp")
        starts = next((claims[name] for name in ("nbf", "iat") if isinstance(claims.get(name), int | float)), None)
        if not isinstance(expires, int | float):
            raise TokenRejected("invalid token (exp)")
        start = starts if isinstance(starts, int | float) else time.time()
        if expires - start > MAX_TOKEN_LIFETIME + self._leeway:
            raise TokenRejected(
                "access token lives longer than Twilio's 24-hour maximum: mint it with a ttl of at most 86400 s",
                code=TOKEN_LIFETIME_EXCEEDED,
            )
