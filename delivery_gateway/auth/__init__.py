"""Authentication of callers: static bearer keys, Twilio Access Tokens, demo mode; ASGI and WebSocket hooks.

Authenticates only; never decides which conversations a caller may see (resolvers/access.py does).
"""

from delivery_gateway.auth.authenticator import (
    AuthenticationFailed,
    Authenticator,
    bearer_credential,
    key_label,
)
from delivery_gateway.auth.middleware import CALLER_SCOPE_KEY, WS_UNAUTHORIZED, AuthMiddleware
from delivery_gateway.auth.tokens import TokenRejected, TwilioTokenVerifier, VerifiedToken

__all__ = [
    "CALLER_SCOPE_KEY",
    "WS_UNAUTHORIZED",
    "AuthMiddleware",
    "AuthenticationFailed",
    "Authenticator",
    "TokenRejected",
    "TwilioTokenVerifier",
    "VerifiedToken",
    "bearer_credential",
    "key_label",
]
