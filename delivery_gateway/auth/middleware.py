"""ASGI middleware that authenticates every GraphQL HTTP request into `scope["caller"]`.

Never lets a request reach the app without a caller (except the static IDE page, which executes nothing) and
never echoes credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from delivery_gateway.auth.authenticator import UNAUTHENTICATED, AuthenticationFailed, Authenticator
from delivery_gateway.kernel.settings import Settings

CALLER_SCOPE_KEY = "caller"
_REALM = 'Bearer realm="delivery-gateway"'


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers") or () if key.lower() == name]


def is_ide_page_request(scope: Scope) -> bool:
    """A bare GET that accepts HTML: the GraphQL view answers it with the static IDE page and executes nothing.

    The one decision both this middleware and the view (graphql/view.py) make, so they cannot disagree. Any query
    string disqualifies it (even `?%71uery=…` decodes to `query` and would execute); like the view, only the first
    `Accept` header counts.
    """
    if scope.get("method") != "GET" or scope.get("query_string", b""):
        return False
    accept = next(iter(_headers(scope, b"accept")), "")
    return "text/html" in accept or "*/*" in accept


def unauthorized_body(reason: str, code: str = UNAUTHENTICATED) -> bytes:
    error = {"message": f"Unauthorized: {reason}", "extensions": {"code": code}}
    return json.dumps({"data": None, "errors": [error]}).encode()


class AuthMiddleware:
    """Sets `scope["caller"]` from the `Authorization` header, or answers 401 (`WWW-Authenticate: Bearer`).

    HTTP only: WebSockets authenticate with their `connection_init` payload, in the GraphQL view's
    `on_ws_connect` (graphql/view.py). `paths`: path prefixes to protect (default: everything it wraps).
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        *,
        paths: Iterable[str] | None = None,
        allow_ide_page: bool = False,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.paths = tuple(paths) if paths is not None else None
        self.allow_ide_page = allow_ide_page

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: Settings, *, paths: Iterable[str] | None = None) -> AuthMiddleware:
        return cls(app, Authenticator.from_settings(settings), paths=paths, allow_ide_page=settings.graphiql)

    def _protects(self, scope: Scope) -> bool:
        if self.paths is None:
            return True
        path = scope.get("path", "")
        return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._protects(scope):
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.pop(CALLER_SCOPE_KEY, None)
        values = _headers(scope, b"authorization")
        try:
            if len(values) > 1:
                raise AuthenticationFailed("more than one Authorization header")
            caller = self.authenticator.authenticate(values[0] if values else None)
        except AuthenticationFailed as exc:
            if not values and self.allow_ide_page and is_ide_page_request(scope):
                await self.app(scope, receive, send)
                return
            await self._reject_http(send, exc, presented=bool(values))
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)

    @staticmethod
    async def _reject_http(send: Send, failure: AuthenticationFailed, *, presented: bool) -> None:
        await send_unauthorized(send, failure, presented=presented)


async def send_unauthorized(send: Send, failure: AuthenticationFailed, *, presented: bool) -> None:
    """HTTP 401 with a Bearer challenge and a GraphQL-shaped body (`extensions.code`)."""
    # RFC 6750 §3: error="invalid_token" when a token was presented (expired ones say so in the description).
    challenge = _REALM + (', error="invalid_token"' if presented else "")
    if presented:
        challenge += f', error_description="{failure.reason}"'
    body = unauthorized_body(failure.reason, failure.code)
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
