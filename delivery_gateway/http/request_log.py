"""One log line per request (and per WebSocket, when it closes): who called, what ran, what it cost, how it ended.

Logs to `delivery_gateway.requests` at INFO with the line's fields in `record.fields` (the JSON formatter writes
them as keys, the text formatter as `key=value`). Never logs a header, a query string, a body, a variable or a
token: the path without its query, counts and names only. When INFO is filtered out, it adds nothing but one
level check to a request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery_gateway.http.exchange import CORRELATION_SCOPE_KEY  # set inside this middleware, read after the app
from delivery_gateway.kernel import request_stats

REQUEST_LOGGER = "delivery_gateway.requests"
IN_MESSAGE = ("method", "path", "status")  # fields the line's message shows (text logs do not repeat them)


class RequestLogMiddleware:
    """Outermost middleware: opens the request's `RequestStats`, lets the app run, writes the line."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger if logger is not None else logging.getLogger(REQUEST_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        stats, token = request_stats.begin()
        outcome: dict[str, Any] = {"status": None, "close_code": None}

        async def send_observed(message: Message) -> None:
            message_type = message["type"]
            if message_type == "http.response.start":
                outcome["status"] = message["status"]
            elif message_type == "websocket.accept":
                outcome["status"] = 101
            elif message_type == "websocket.close":
                outcome["close_code"] = message.get("code", 1000)
                if outcome["status"] is None:  # closed before accepting: the handshake was refused
                    outcome["status"] = 403
            elif message_type == "websocket.http.response.start":
                outcome["status"] = message["status"]
            await send(message)

        async def receive_observed() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and outcome["close_code"] is None:
                outcome["close_code"] = message.get("code", 1005)
            return message

        try:
            await self.app(scope, receive_observed if kind == "websocket" else receive, send_observed)
        except BaseException:
            if outcome["status"] is None:
                outcome["status"] = 500
            raise
        finally:
            request_stats.end(token)
            self._write(scope, stats, outcome, time.perf_counter() - started)

    def _write(self, scope: Scope, stats: request_stats.RequestStats, outcome: dict[str, Any], seconds: float) -> None:
        client = scope.get("client")
        websocket = scope["type"] == "websocket"
        fields: dict[str, Any] = {
            "request_id": scope.get(CORRELATION_SCOPE_KEY),
            "method": "WEBSOCKET" if websocket else scope.get("method"),
            "path": scope.get("path"),
            "status": outcome["status"],
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "caller": stats.caller,
        }
        if stats.operations:
            fields["operation"] = stats.operation
            fields["operation_type"] = stats.operation_type
            if websocket:
                fields["operations"] = stats.operations
        if stats.operations or stats.upstream_calls or stats.cache_hits or stats.cache_misses:
            fields["upstream_calls"] = stats.upstream_calls
            fields["cache_hits"] = stats.cache_hits
            fields["cache_misses"] = stats.cache_misses
        if stats.response_cache is not None:
            fields["response_cache"] = stats.response_cache
        if stats.webhook_outcome is not None:
            fields["event_type"] = stats.webhook_event
            fields["outcome"] = stats.webhook_outcome
        if websocket:
            fields["close_code"] = outcome["close_code"]
        self.logger.info(
            "%s %s %s",
            fields["method"],
            fields["path"],
            fields["status"],
            extra={"fields": fields, "fields_in_message": IN_MESSAGE},
        )
