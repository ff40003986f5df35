"""ASGI guards in front of every route: correlation ids, body size limits (413), CORS, and the origin policy.

The correlation id and the bounded body read themselves live in http/exchange.py.

Never reads a body it will not bound, never reads one before the request is authenticated (where it must be),
never trusts a client's correlation id unless it is short and plain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http.websocket_origin import is_same_origin, normalize_allowed_origins, normalize_origin

from delivery_gateway.http.exchange import (
    CORRELATION_HEADER,
    CORRELATION_SCOPE_KEY,
    correlation_id_for,
    read_bounded_body,
    replayed,
    reset_correlation_id,
    send_error,
    set_correlation_id,
)
from delivery_gateway.kernel.settings import Settings

LOCALHOST_ORIGIN_REGEX = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$"
_LOCALHOST = re.compile(LOCALHOST_ORIGIN_REGEX)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class CorrelationIdMiddleware:
    """Gives every request and WebSocket an id: `scope["correlation_id"]`, a contextvar, `X-Request-ID` out.

    A client's `X-Request-ID` is kept when it is 1–64 plain characters; otherwise a fresh one is made.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        correlation_id = correlation_id_for(_header(scope, CORRELATION_HEADER))
        scope[CORRELATION_SCOPE_KEY] = correlation_id
        token = set_correlation_id(correlation_id)
        try:
            if scope["type"] == "http":
                await self.app(scope, receive, _sending_id(send, correlation_id))
            else:  # a WebSocket has no response headers to add it to (and holds no wrapper for its life)
                await self.app(scope, receive, send)
        finally:
            reset_correlation_id(token)


def _sending_id(send: Send, correlation_id: str) -> Send:
    """`send` adding the correlation id header to the response."""

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != CORRELATION_HEADER]
            headers.append((CORRELATION_HEADER, correlation_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_id


def declared_length_refusal(scope: Scope, limit: int) -> tuple[int, str, str] | None:
    """(status, code, message) when a request's Content-Length is malformed or above `limit`; None otherwise."""
    declared = _header(scope, b"content-length")
    if declared is None:
        return None
    if not declared.strip().isdigit():
        return 400, "BAD_REQUEST", "Invalid Content-Length header."
    if int(declared) > limit:
        return 413, "PAYLOAD_TOO_LARGE", f"Request body exceeds {limit} bytes."
    return None


class HttpOnly:
    """Runs `middleware` for HTTP requests only: any other scope (a WebSocket, the lifespan) goes straight to the
    app below it. For a layer that passes those through anyway, this keeps no frame of it alive for as long as a
    WebSocket lives (a few hundred bytes per connection, times thousands of subscribers)."""

    def __init__(self, app: ASGIApp, *, middleware: Middleware) -> None:
        self.app = app
        cls, args, kwargs = middleware
        self.http: ASGIApp = cls(app, *args, **kwargs)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return (self.http if scope["type"] == "http" else self.app)(scope, receive, send)


def http_only(middleware: Middleware) -> Middleware:
    """`middleware` for HTTP requests only (HttpOnly): for layers that do nothing for a WebSocket."""
    return Middleware(HttpOnly, middleware=middleware)


class DeclaredLengthGuard:
    """Refuses a body announced larger than its limit (413) or an invalid Content-Length (400) from the headers
    alone, before authentication: nothing of the body is read, so it costs nothing to say so first."""

    def __init__(self, app: ASGIApp, *, limits: BodySizeLimitMiddleware) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = declared_length_refusal(scope, self.limits.limit_for(scope.get("path", "")))
            if refusal is not None:
                await send_error(send, *refusal)
                return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Reads each HTTP body up to its limit before the app sees it: 413 beyond it, 408 when it trickles.

    `path_limits` maps path prefixes (e.g. the webhook route) to their own, usually smaller, limits.
    `json_object_paths`: prefixes (the GraphQL endpoint) where a JSON body must be an object or a list — other
    JSON (`null`, `1`, `"x"`) gets a 400 here instead of an exception in the GraphQL view.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        read_timeout: float = 30.0,
        json_object_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = sorted((path_limits or {}).items(), key=lambda item: -len(item[0]))
        self.read_timeout = read_timeout
        self.json_object_paths = tuple(json_object_paths)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.path_limits:
            if _under(path, prefix):
                return limit
        return self.max_bytes

    def _bad_json_shape(self, scope: Scope, body: bytes) -> bool:
        if not any(_under(scope.get("path", ""), prefix) for prefix in self.json_object_paths):
            return False
        if "json" not in (_header(scope, b"content-type") or "").lower():
            return False
        # Without parsing (the view parses once, and a cached answer not at all): JSON that is an object or a list
        # starts with `{` or `[`; anything else that parses is a scalar. Malformed JSON gets the view's own 400.
        start = body.lstrip(b" \t\r\n")[:1]
        if start in (b"{", b"["):
            return False
        try:
            json.loads(body)
        except ValueError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        refusal = declared_length_refusal(scope, limit)
        if refusal is not None:
            await send_error(send, *refusal)
            return
        body = await read_bounded_body(receive, send, limit, self.read_timeout)
        if body is None:
            return
        if self._bad_json_shape(scope, body):
            await send_error(send, 400, "BAD_REQUEST", "The request body must be a JSON object.")
            return
        await self.app(scope, replayed(body, receive), send)


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - never called
    raise RuntimeError("the CORS middleware of OriginPolicy.cors_headers only computes headers")


class OriginPolicy:
    """Which browser origins may call cross-origin: configured ones, plus localhost in demo mode.

    The one origin rule: CORS (below) and the GraphQL view's WebSocket handshake check both ask it.
    """

    MEMORY = 256  # origins whose CORS response headers are remembered (any client may send any Origin)

    def __init__(self, allowed_origins: Iterable[str] = (), *, allow_localhost: bool = False) -> None:
        self.allowed = normalize_allowed_origins(list(allowed_origins))
        self.allow_localhost = allow_localhost
        self._cors: CORSMiddleware | None = None
        self._cors_headers: dict[tuple[bytes | None, bool], list[tuple[bytes, bytes]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        return cls(settings.allowed_origins, allow_localhost=settings.demo_mode)

    def allows(self, origin: str, host: str | None) -> bool:
        if is_same_origin(origin, host) or "*" in self.allowed:
            return True
        normalized = normalize_origin(origin)
        if normalized is None:
            return False
        return normalized in self.allowed or (self.allow_localhost and bool(_LOCALHOST.match(normalized)))

    async def cors_headers(self, origin: bytes | None, cookie: bool) -> list[tuple[bytes, bytes]]:
        """The headers CORS adds to an ordinary (not preflight) response for this `Origin` (None: absent) — what
        Starlette's CORS middleware (`cors_middleware`) would add, computed by it once per origin and remembered."""
        known = self._cors_headers.get((origin, cookie))
        if known is not None:
            return known
        memo = (origin, cookie)
        cors = self._cors
        if cors is None:
            cors = self._cors = CORSMiddleware(_no_app, **self._cors_options())
        request: list[tuple[bytes, bytes]] = [] if origin is None else [(b"origin", origin)]
        if cookie:
            request.append((b"cookie", b"-"))
        added: list[tuple[bytes, bytes]] = []

        async def capture(message: Message) -> None:
            added.extend(message["headers"])

        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        await cors.send(start, capture, Headers(raw=request))
        if len(self._cors_headers) < self.MEMORY:
            self._cors_headers[memo] = added
        return added

    def _cors_options(self) -> dict[str, Any]:
        return {
            "allow_origins": sorted(self.allowed),
            "allow_origin_regex": LOCALHOST_ORIGIN_REGEX if self.allow_localhost else None,
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["Authorization", "Content-Type", "X-Request-ID"],
            "expose_headers": ["X-Request-ID"],
            "max_age": 600,
        }

    def cors_middleware(self) -> Middleware:
        """Starlette's CORS middleware for exactly these origins (none configured: same-origin only)."""
        return Middleware(CORSMiddleware, **self._cors_options())


def guard_middleware(
    settings: Settings,
    *,
    webhook_paths: Iterable[str] = (),
    graphql_paths: Iterable[str] = ("/graphql",),
    authentication: Middleware | None = None,
) -> list[Middleware]:
    """The guard stack for `Starlette(middleware=...)`, outermost first: correlation ids, CORS (preflights are
    answered, refusals readable by browsers), announced body sizes (headers only), `authentication` (headers
    only), then the body limits — so an unauthenticated request is refused at once, before any of its body is
    waited for."""
    policy = OriginPolicy.from_settings(settings)
    json_paths = tuple(graphql_paths)
    webhook_limits = {path: settings.max_webhook_bytes for path in webhook_paths}

    def body_limits(app: ASGIApp) -> BodySizeLimitMiddleware:
        return BodySizeLimitMiddleware(
            app,
            max_bytes=settings.max_body_bytes,
            path_limits=webhook_limits,
            read_timeout=settings.body_read_timeout,
            json_object_paths=json_paths,
        )

    def declared_length_guard(app: ASGIApp) -> DeclaredLengthGuard:
        return DeclaredLengthGuard(app, limits=body_limits(app))

    # Each layer but the correlation id does nothing for a WebSocket: HttpOnly keeps them off its path.
    return [
        Middleware(CorrelationIdMiddleware),
        http_only(policy.cors_middleware()),
        http_only(Middleware(declared_length_guard)),
        *([http_only(authentication)] if authentication is not None else []),
        http_only(Middleware(body_limits)),
    ]
