"""What one request did, noted by the layers it passes through, for its one log line (http/request_log.py).

The request-log middleware opens a `RequestStats` in a context variable; the upstream client, the cache, the
GraphQL layer and the webhook endpoint add to it with the `note_*` functions, which cost one context-variable
read and do nothing outside a logged request. Holds counts and names only: never a credential, a body or a URL.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(slots=True)
class RequestStats:
    caller: str | None = None  # CallerKind value ("internal", "participant", "demo"), None: not authenticated
    operation: str | None = None  # the GraphQL operation's name (the last one, on a WebSocket)
    operation_type: str | None = None  # "query", "mutation", "subscription"
    operations: int = 0  # GraphQL operations run (one per HTTP request; any number on a WebSocket)
    upstream_calls: int = 0  # HTTP attempts to Twilio made on this request's behalf (retries included)
    cache_hits: int = 0
    cache_misses: int = 0
    response_cache: str | None = None  # hit, miss, uncacheable: what the response cache made of the request
    webhook_event: str | None = None  # Twilio's EventType, for POST /webhooks/twilio
    webhook_outcome: str | None = None  # accepted, rejected, malformed, ignored, unavailable


_current: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar("request_stats", default=None)


def begin() -> tuple[RequestStats, contextvars.Token[RequestStats | None]]:
    """A fresh record for the request this task serves (tasks it starts inherit it); `end(token)` when done."""
    stats = RequestStats()
    return stats, _current.set(stats)


def end(token: contextvars.Token[RequestStats | None]) -> None:
    _current.reset(token)


def current() -> RequestStats | None:
    return _current.get()


def note_upstream_call() -> None:
    stats = _current.get()
    if stats is not None:
        stats.upstream_calls += 1


def note_cache(hits: int, misses: int) -> None:
    stats = _current.get()
    if stats is not None:
        stats.cache_hits += hits
        stats.cache_misses += misses


def note_caller(kind: str) -> None:
    stats = _current.get()
    if stats is not None:
        stats.caller = kind


def note_operation(name: str | None, operation_type: str | None) -> None:
    stats = _current.get()
    if stats is not None:
        stats.operations += 1
        stats.operation = name
        stats.operation_type = operation_type


def note_webhook(event_type: str | None, outcome: str) -> None:
    stats = _current.get()
    if stats is not None:
        stats.webhook_event = event_type
        stats.webhook_outcome = outcome


def note_response_cache(result: str) -> None:
    stats = _current.get()
    if stats is not None:
        stats.response_cache = result
