"""The one error path of the GraphQL API: client-facing failures, the `extensions.code` of every error, and the
masking of anything unexpected.

Never sends an unexpected exception's text to a client (it is logged with its traceback under the request's
correlation id instead), and never logs an expected failure (bad input, FORBIDDEN, upstream errors) as an error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import MaskErrors
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.relay.types import GlobalIDValueError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError

from delivery_gateway.http.exchange import CORRELATION_SCOPE_KEY, current_correlation_id
from delivery_gateway.kernel.errors import CodedError
from delivery_gateway.kernel.sids import InvalidSid
from delivery_gateway.upstream.errors import UpstreamBadRequest, UpstreamError, UpstreamNotFound, UpstreamRateLimited

log = logging.getLogger("delivery_gateway.errors")

BAD_USER_INPUT = "BAD_USER_INPUT"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
INTERNAL = "INTERNAL_SERVER_ERROR"
MASKED_MESSAGE = "Internal server error"

# Requests Strawberry refuses before parsing them as an operation (e.g. "queries are not allowed" over legacy
# graphql-ws): the client's mistake, not ours.
_REQUEST_ERRORS = (CannotGetOperationTypeError, InvalidOperationTypeError, MissingQueryError)


class GatewayError(CodedError):
    """A failure a resolver reports to the client on purpose."""


class BadUserInput(GatewayError):
    """Input the client can fix; `argument` names the argument at fault (surfaced as `extensions.argument`, so a
    form can put the message next to the right field) when the error is about one argument."""

    code = BAD_USER_INPUT

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class Forbidden(GatewayError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "You do not have access to this conversation.") -> None:
        super().__init__(message)


class FailedPrecondition(GatewayError):
    code = "FAILED_PRECONDITION"


class NotFound(GatewayError):
    """A resource a full-access caller named does not exist (participant callers get FORBIDDEN instead)."""

    code = "NOT_FOUND"


class RateLimiterUnavailable(GatewayError):
    """The store of the gateway's own rate limits cannot be reached: what they guard is refused until it can."""

    code = "RATE_LIMITER_UNAVAILABLE"


class RateLimited(GatewayError):
    """The caller has used up an allowance of the gateway's own (e.g. resends); `retry_after` seconds until the
    window it counts in starts over."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_extensions(exc: BaseException | None) -> dict[str, Any] | None:
    """The `extensions` an exception surfaces with, or None when it is not the client's business (a bug)."""
    if isinstance(exc, InvalidSid):
        return {"code": exc.code, "argument": exc.argument}
    if isinstance(exc, UpstreamError):
        out: dict[str, Any] = {"code": exc.code}
        if exc.twilio_code is not None:
            out["twilioCode"] = exc.twilio_code
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            out["retryAfter"] = exc.retry_after
        return out
    if isinstance(exc, RateLimited):
        return {"code": exc.code, "retryAfter": exc.retry_after}
    if isinstance(exc, BadUserInput) and exc.argument is not None:
        return {"code": exc.code, "argument": exc.argument}
    if isinstance(exc, CodedError):
        return {"code": exc.code}
    if isinstance(exc, GlobalIDValueError):
        return {"code": BAD_USER_INPUT}
    return None


def coded(error: GraphQLError, code: str) -> GraphQLError:
    """`error` with `extensions.code` (kept when already set)."""
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", code)
    error.extensions = extensions
    return error


def classify(error: GraphQLError) -> bool:
    """Give `error` its `extensions.code`; True when it is unexpected and must be masked.

    Parse and validation errors (no original exception) keep their message and get GRAPHQL_PARSE_FAILED /
    GRAPHQL_VALIDATION_FAILED; variable coercion gets BAD_USER_INPUT; exceptions get their own code.
    """
    extensions = error.extensions if isinstance(error.extensions, dict) else {}
    code = extensions.get("code")
    if code == INTERNAL:
        return "correlationId" not in extensions
    if code:
        return False  # set on purpose (limits, or already classified)
    original = error.original_error
    if error.message.startswith("Variable '$"):
        coded(error, BAD_USER_INPUT)
    elif isinstance(original, UpstreamError):
        _publish_upstream_error(error, original)
    elif (known := error_extensions(original)) is not None:
        error.extensions = {**extensions, **known}
    elif original is None or (isinstance(original, GraphQLError) and original.original_error is None):
        if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
            coded(error, QUERY_TOO_COMPLEX if "tokens. Parsing aborted" in error.message else PARSE_FAILED)
        else:
            coded(error, VALIDATION_FAILED)
    elif isinstance(original, _REQUEST_ERRORS):
        coded(error, VALIDATION_FAILED)
    else:
        return True
    return False


def _publish_upstream_error(error: GraphQLError, original: UpstreamError) -> None:
    """Callers read a generic message and the code; the log keeps what Twilio said, where, under the request's
    correlation id (which the caller also gets, to quote it)."""
    correlation_id = current_correlation_id() or uuid.uuid4().hex
    caused_by_caller = isinstance(original, UpstreamNotFound | UpstreamBadRequest)
    log.log(
        logging.INFO if caused_by_caller else logging.WARNING,
        "upstream %s at %s [correlationId=%s]: %s",
        original.code,
        ".".join(str(p) for p in error.path or ()) or "-",
        correlation_id,
        original,
    )
    error.message = original.public_message
    error.extensions = {
        **(error.extensions or {}),
        **(error_extensions(original) or {}),
        "correlationId": correlation_id,
    }


def correlation_id_of(context: object) -> str | None:
    """The request's correlation id (set by http.guards.CorrelationIdMiddleware), if any."""
    request = context.get("request") if isinstance(context, dict) else getattr(context, "request", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get(CORRELATION_SCOPE_KEY), str):
        return str(scope[CORRELATION_SCOPE_KEY])
    return current_correlation_id()


class GatewayErrors(MaskErrors):
    """Strawberry's MaskErrors with the gateway's classification: coded errors pass, anything else is masked.

    Masked errors read "Internal server error" with `extensions.code` INTERNAL_SERVER_ERROR and a
    `correlationId`; the original is logged with its traceback under that same id.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=classify, error_message=MASKED_MESSAGE)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        correlation_id = correlation_id_of(self.execution_context.context) or uuid.uuid4().hex
        log.error(
            "unexpected error in %s at %s [correlationId=%s]: %s",
            self.execution_context.operation_name or "anonymous operation",
            ".".join(str(p) for p in error.path or ()) or "-",
            correlation_id,
            error.message,
            exc_info=(type(original), original, original.__traceback__) if original is not None else None,
        )
        return GraphQLError(
            MASKED_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": INTERNAL, "correlationId": correlation_id},
        )

    def on_operation(self) -> Iterator[None]:
        try:
            yield from super().on_operation()
        except GraphQLError as error:
            # Raised out of another extension's hook (ParserCache's syntax errors): Strawberry turns it into
            # the result after this hook has run, so it is coded on its way through.
            classify(error)
            raise


class GatewaySchema(Schema):
    """strawberry.Schema whose errors are classified, masked and logged in one place (GatewayErrors)."""

    async def _prepare_operation_async(
        self, context: ExecutionContext, extensions_runner: SchemaExtensionsRunner
    ) -> PreExecutionError | None:
        """Strawberry's, plus the syntax errors ParserCache raises from its parsing hook: over HTTP Strawberry turns
        them into a result further out, but a stream (WebSocket, SSE) would end with no error frame and a traceback
        in the log. Here both paths answer GRAPHQL_PARSE_FAILED."""
        try:
            return await super()._prepare_operation_async(context, extensions_runner)
        except GraphQLError as error:
            classify(error)
            context.pre_execution_errors = [error]
            return PreExecutionError(data=None, errors=[error])

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Strawberry logs every error here; GatewayErrors logs the unexpected ones, with their correlation id,
        so nothing is logged twice and no expected failure (bad input, FORBIDDEN...) is logged as an error."""
