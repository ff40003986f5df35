"""Typed failures of upstream (Twilio) calls, so resolvers map them to GraphQL error codes.

Never raised for programming errors; only for what Twilio (or the network to it) answered or failed to answer.
"""

from __future__ import annotations

import re

from delivery_gateway.kernel.errors import CodedError

_PLACEHOLDER = re.compile(r"\{(\w*)Sid\}")
_RESOURCE_NAMES = {"ChatService": "Conversation Service", "Conversation": "conversation", "Message": "message"}


def resource_of(route: str | None) -> str:
    """The resource a templated route (upstream/routes.py) names last: `/v1/Conversations/{ConversationSid}/
    Participants` -> "conversation", `/v1/Conversations/{ConversationSid}/Messages/{Sid}` -> "message"."""
    segments = (route or "").strip("/").split("/")
    for index in range(len(segments) - 1, -1, -1):
        match = _PLACEHOLDER.fullmatch(segments[index])
        if match is None:
            continue
        name = match.group(1) or (segments[index - 1].removesuffix("s") if index else "")
        return _RESOURCE_NAMES.get(name, name.lower() or "resource")
    return "resource"


class UpstreamError(CodedError):
    """Base of every upstream failure. `code` is what clients are shown (GraphQL `extensions.code`).

    The exception's own message names the method, route and Twilio's detail, for the log; `public_message` is
    what a caller may read: it never names Twilio's host, port or resource paths.
    """

    code = "UPSTREAM_ERROR"
    public_text = "Twilio gave an answer the gateway could not use."

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

    @property
    def public_message(self) -> str:
        return self.public_text


class UpstreamNotFound(UpstreamError):
    code = "NOT_FOUND"

    @property
    def public_message(self) -> str:
        return f"Not found: Twilio has no such {resource_of(self.route)}."


class UpstreamBadRequest(UpstreamError):
    code = "UPSTREAM_BAD_REQUEST"
    public_text = "Twilio refused the request."


class UpstreamUnauthorized(UpstreamError):
    code = "UPSTREAM_UNAUTHORIZED"
    public_text = "Twilio refused the gateway's credentials."


class UpstreamRateLimited(UpstreamError):
    code = "UPSTREAM_RATE_LIMITED"
    public_text = "Twilio is rate-limiting the gateway; retry later."

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """5xx after retries, connection refused/reset, or the circuit breaker is open."""

    code = "UPSTREAM_UNAVAILABLE"
    public_text = "Twilio could not be reached or is failing; retry later."


class UpstreamCircuitOpen(UpstreamUnavailable):
    """Refused by the open (or half-open) circuit breaker: nothing was sent, so nothing was learnt about the
    resource, and a later attempt may be let through."""


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
    public_text = "Twilio did not answer in time; retry later."
