"""Client-facing failures of resolvers and the one mapping from any exception to GraphQL `extensions.code`.

Never hides a programming error behind a code: unknown exceptions map to None (INTERNAL for the caller).
"""

from __future__ import annotations

from typing import Any

from strawberry.relay.types import GlobalIDValueError

from delivery_gateway.kernel.sids import InvalidSid
from delivery_gateway.upstream.errors import UpstreamError, UpstreamRateLimited


class GatewayError(Exception):
    """A failure the client caused or may see; `code` becomes `extensions.code`."""

    code = "GATEWAY_ERROR"


class BadUserInput(GatewayError):
    code = "BAD_USER_INPUT"


class Forbidden(GatewayError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "You do not have access to this conversation.") -> None:
        super().__init__(message)


class NotFound(GatewayError):
    code = "NOT_FOUND"


def error_extensions(exc: BaseException | None) -> dict[str, Any] | None:
    """The `extensions` an error surfaces with, or None for errors that are not the client's business."""
    if isinstance(exc, InvalidSid):
        return {"code": BadUserInput.code, "argument": exc.argument}
    if isinstance(exc, GatewayError):
        return {"code": exc.code}
    if isinstance(exc, GlobalIDValueError):
        return {"code": BadUserInput.code}
    if isinstance(exc, UpstreamError):
        out: dict[str, Any] = {"code": exc.code}
        if exc.twilio_code is not None:
            out["twilioCode"] = exc.twilio_code
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            out["retryAfter"] = exc.retry_after
        return out
    return None
