"""Typed failures of upstream (Twilio) calls, so resolvers map them to GraphQL error codes.

Never raised for programming errors; only for what Twilio (or the network to it) answered or failed to answer.
"""

from __future__ import annotations

from delivery_gateway.kernel.errors import CodedError


class UpstreamError(CodedError):
    """Base of every upstream failure. `code` is what clients are shown (GraphQL `extensions.code`)."""

    code = "UPSTREAM_ERROR"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        twilio_code: int | None = None,
        route: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.twilio_code = twilio_code
        self.route = route


class UpstreamNotFound(UpstreamError):
    code = "NOT_FOUND"


class UpstreamBadRequest(UpstreamError):
    code = "UPSTREAM_BAD_REQUEST"


class UpstreamUnauthorized(UpstreamError):
    code = "UPSTREAM_UNAUTHORIZED"


class UpstreamRateLimited(UpstreamError):
    code = "UPSTREAM_RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """5xx after retries, connection refused/reset, or the circuit breaker is open."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
