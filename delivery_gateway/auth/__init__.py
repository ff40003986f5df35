"""Authentication of callers: static bearer keys, Twilio Access Tokens, demo mode; the HTTP middleware.

Authenticates only; never decides which conversations a caller may see (graphql/access.py does).
"""

from delivery_gateway.auth.authenticator import (
    AuthenticationFailed,
    Authenticator,
    bearer_credential,
    bearer_matches,
    key_label,
)
from delivery_gateway.auth.middleware import CALLER_SCOPE_KEY, AuthMiddleware, is_ide_page_request, send_unauthorized
from delivery_gateway.auth.tokens import TokenRejected, TwilioTokenVerifier, VerifiedToken

__all__ = [
    "CALLER_SCOPE_KEY",
    "AuthMiddleware",
    "AuthenticationFailed",
    "Authenticator",
    "TokenRejected",
    "TwilioTokenVerifier",
    "VerifiedToken",
    "bearer_credential",
    "bearer_matches",
    "is_ide_page_request",
    "key_label",
    "send_unauthorized",
]
