"""The hit path of the response cache as one ASGI layer in front of the guard stack: a request whose exact answer
is cached gets it after one pass over its headers, with the same guards the full stack would apply.

What it applies, each from the guards' own code: the correlation id (`X-Request-ID`), the headers CORS adds for the
request's `Origin` (computed once per origin by Starlette's CORS middleware, http/guards.OriginPolicy), the announced
body size, authentication (the authenticator, which remembers verified credentials) and the bounded body read.
Anything else — a preflight, a WebSocket, a stream, a missing or refused credential, an oversize or chunked body,
a request whose answer is not cached — goes on to the full stack unchanged (with its body, when it was read).
Never answers what the full stack would not: a hit is only ever the bytes stored for the same caller scope and the
same request bytes (graphql/response_cache.py).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from delivery_gateway.auth import AuthenticationFailed, Authenticator
from delivery_gateway.graphql.response_cache import FINGERPRINT_SCOPE_KEY, ResponseCacheFront
from delivery_gateway.http.exchange import (
    CORRELATION_HEADER,
    CORRELATION_SCOPE_KEY,
    correlation_id_for,
    read_bounded_body,
    replayed,
)
from delivery_gateway.http.guards import OriginPolicy
from delivery_gateway.kernel import request_stats
from delivery_gateway.kernel.settings import Settings


class CachedAnswersMiddleware:
    """Answers cached GraphQL requests on `path` before the guard stack; passes everything else through."""

    def __init__(self, app: ASGIApp, *, front: ResponseCacheFront | None, settings: Settings, path: str) -> None:
        self.app = app
        self.front = front
        self.path = path
        self.authenticator = Authenticator.from_settings(settings)
        self.origins = OriginPolicy.from_settings(settings)
        self.max_bytes = settings.max_body_bytes
        self.read_timeout = settings.body_read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is None or scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            if not scope.get("query_string"):  # the IDE page, or a mistake the view explains
                await self.app(scope, receive, send)
                return
        elif method != "POST":
            await self.app(scope, receive, send)
            return
        authorization: bytes | None = None
        origin: bytes | None = None
        request_id: bytes | None = None
        length: bytes | None = None
        cookie = False
        for name, value in scope["headers"]:  # one pass; ASGI servers give header names in lower case
            if name == b"authorization":
                if authorization is not None:  # more than one: the auth middleware refuses it
                    await self.app(scope, receive, send)
                    return
                authorization = value
            elif name == b"origin":
                origin = value
            elif name == CORRELATION_HEADER:
                request_id = value
            elif name == b"content-length":
                length = value
            elif name == b"cookie":
                cookie = True
            elif name == b"accept" and (b"text/event-stream" in value or b"multipart/mixed" in value):
                await self.app(scope, receive, send)  # a stream: never cached
                return
        if authorization is None or (method == "POST" and (length is None or not length.isdigit())):
            await self.app(scope, receive, send)  # no credential, or a body of unannounced size
            return
        if method == "POST" and int(length or b"0") > self.max_bytes:
            await self.app(scope, receive, send)  # the guards answer 413 from the headers
            return
        try:
            caller = self.authenticator.authenticate(authorization.decode("latin-1"))
        except AuthenticationFailed:
            await self.app(scope, receive, send)  # the auth middleware answers 401
            return
        if method == "POST":
            body = await read_bounded_body(receive, send, self.max_bytes, self.read_timeout)
            if body is None:
                return  # the client left, or was answered (413, 408)
            receive = replayed(body, receive)
        else:
            body = b""
        fingerprint = front.fingerprint(caller, scope, body)
        correlation_id = correlation_id_for(request_id.decode("latin-1") if request_id is not None else None)
        headers = [*await self.origins.cors_headers(origin, cookie), (CORRELATION_HEADER, correlation_id.encode())]
        if await front.serve(fingerprint, send, headers):
            scope[CORRELATION_SCOPE_KEY] = correlation_id  # for the request's log line
            request_stats.note_caller(caller.kind)
            return
        scope[FINGERPRINT_SCOPE_KEY] = fingerprint  # the view need not compute it again
        await self.app(scope, receive, send)
