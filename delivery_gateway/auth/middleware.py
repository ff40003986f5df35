"""ASGI middleware that authenticates every GraphQL request and WebSocket into `scope["caller"]`.

Never lets a request reach the app without a caller (except the static IDE page) and never echoes credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delivery_gateway.auth.authenticator import AuthenticationFailed, Authenticator
from delivery_gateway.kernel.settings import Settings

log = logging.getLogger("delivery_gateway.auth")

CALLER_SCOPE_KEY = "caller"
WS_UNAUTHORIZED = 4401
WS_INIT_TIMEOUT = 4408
_REALM = 'Bearer realm="delivery-gateway"'
_INIT_TYPES = {"connection_init"}


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers") or () if key.lower() == name]


def _is_ide_page_request(scope: Scope) -> bool:
    """A bare GET that accepts HTML: Strawberry answers with the static IDE page and executes nothing.

    Any query string disqualifies it (even `?%71uery=…` decodes to `query` and would execute).
    """
    if scope.get("method") != "GET" or scope.get("query_string", b""):
        return False
    accept = ",".join(_headers(scope, b"accept"))
    return "text/html" in accept or "*/*" in accept


def unauthorized_body(reason: str) -> bytes:
    error = {"message": f"Unauthorized: {reason}", "extensions": {"code": "UNAUTHENTICATED"}}
    return json.dumps({"data": None, "errors": [error]}).encode()


class AuthMiddleware:
    """Sets `scope["caller"]`; answers 401 (`WWW-Authenticate: Bearer`) or closes a WebSocket with 4401.

    HTTP: the `Authorization` header. WebSocket: the `connection_init` payload `{"Authorization": "Bearer …"}`
    (graphql-transport-ws and legacy graphql-ws), awaited for `init_timeout` seconds (then close 4408).
    `paths`: path prefixes to protect (default: everything this middleware wraps).
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        *,
        paths: Iterable[str] | None = None,
        allow_ide_page: bool = False,
        init_timeout: float = 10.0,
        subprotocols: Iterable[str] = ("graphql-transport-ws", "graphql-ws"),
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.paths = tuple(paths) if paths is not None else None
        self.allow_ide_page = allow_ide_page
        self.init_timeout = init_timeout
        self.subprotocols = tuple(subprotocols)

    @classmethod
    def from_settings(cls, app: ASGIApp, settings: Settings, *, paths: Iterable[str] | None = None) -> AuthMiddleware:
        subprotocols = ["graphql-transport-ws"] + (["graphql-ws"] if settings.legacy_graphql_ws else [])
        return cls(
            app,
            Authenticator.from_settings(settings),
            paths=paths,
            allow_ide_page=settings.graphiql,
            init_timeout=settings.ws_init_timeout,
            subprotocols=subprotocols,
        )

    def _protects(self, scope: Scope) -> bool:
        if self.paths is None:
            return True
        path = scope.get("path", "")
        return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._protects(scope):
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket" and self._protects(scope):
            await self._websocket(scope, receive, send)
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
            if not values and self.allow_ide_page and _is_ide_page_request(scope):
                await self.app(scope, receive, send)
                return
            await self._reject_http(send, exc.reason, presented=bool(values))
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)

    @staticmethod
    async def _reject_http(send: Send, reason: str, *, presented: bool) -> None:
        challenge = _REALM + (', error="invalid_token"' if presented else "")
        body = unauthorized_body(reason)
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Accept, wait for `connection_init`, authenticate, and only then start the app with a replay.

        The app (and its `get_context`) therefore never runs for an unauthenticated socket, and always sees
        `scope["caller"]` from its very first line; its own `websocket.accept` is swallowed (already sent).
        """
        scope.pop(CALLER_SCOPE_KEY, None)
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        offered = list(scope.get("subprotocols") or ())
        subprotocol = next((p for p in offered if p in self.subprotocols), None)
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        try:
            async with asyncio.timeout(self.init_timeout):
                init = await receive()
        except TimeoutError:
            await send({"type": "websocket.close", "code": WS_INIT_TIMEOUT, "reason": "Init timeout"})
            return
        if init["type"] != "websocket.receive":
            return  # disconnected before saying anything
        try:
            parsed = json.loads(init.get("text") or "")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("type") not in _INIT_TYPES:
            await self._refuse(send, "connection not initialised")
            return
        try:
            caller = self.authenticator.authenticate_connection_params(parsed.get("payload"))
        except AuthenticationFailed as exc:
            await self._refuse(send, exc.reason)
            return
        scope[CALLER_SCOPE_KEY] = caller
        pending: list[Message] = [first, init]
        accepted = False

        async def replay_receive() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()

        async def app_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                return  # already accepted above
            await send(message)

        await self.app(scope, replay_receive, app_send)

    @staticmethod
    async def _refuse(send: Send, reason: str) -> None:
        log.info("websocket refused: %s", reason)
        await send({"type": "websocket.close", "code": WS_UNAUTHORIZED, "reason": "Unauthorized"})
