"""Verification of Twilio Access Tokens (the JWT the Conversations SDK holds) into a participant identity.

Pure and synchronous; never performs I/O, never logs or returns the token or any secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import jwt

from delivery_gateway.kernel.sids import is_sid

TWILIO_TOKEN_CONTENT_TYPE = "twilio-fpa;v=1"
MAX_TOKEN_LENGTH = 8192  # real Access Tokens are well under 2 KiB; anything longer is refused unparsed


class TokenRejected(Exception):
    """The token is not one this gateway accepts. `reason` is safe to log: it never quotes the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    identity: str
    service_sid: str
    key_sid: str  # the API key that signed it (`iss`)


class TwilioTokenVerifier:
    """Checks signature (secret chosen by `iss`), expiry, issuer, account and chat grant of a token."""

    def __init__(
        self,
        *,
        account_sid: str | None,
        signing_keys: Mapping[str, str],
        allowed_services: Iterable[str] = (),
        leeway: float = 10.0,
    ) -> None:
        self._account_sid = account_sid
        self._keys = dict(signing_keys)
        self._services = frozenset(allowed_services)
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
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad signature") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
        if claims.get("sub") != self._account_sid:
            raise TokenRejected("token is for another account")
        grants = claims.get("grants")
        if not isinstance(grants, dict):
            raise TokenRejected("no grants")
        identity = grants.get("identity")
        if not isinstance(identity, str) or not identity or len(identity) > 256:
            raise TokenRejected("no identity")
        chat = grants.get("chat")
        service_sid = chat.get("service_sid") if isinstance(chat, dict) else None
        if not isinstance(service_sid, str) or not is_sid(service_sid, "IS"):
            raise TokenRejected("no chat grant with a service")
        if self._services and service_sid not in self._services:
            raise TokenRejected("chat service not allowed")
        return VerifiedToken(identity=identity, service_sid=service_sid, key_sid=issuer)
