"""The server's own `send` of a WebSocket, put on its scope for frames that need nothing of the layers in between.

Every middleware between the server and the app may wrap a WebSocket's `send`; the ones here look only at
`websocket.accept` and `websocket.close` (the request log, the drain registry). A live hub (graphql/live/hub.py)
writes one `websocket.send` frame per subscriber per event, thousands at a time, and each wrapper costs a coroutine
per frame: it writes through the server's `send` instead. Never used for anything but `websocket.send` (accepting
and closing still pass every layer), and adds no frame to the connection (it dispatches without one).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT_SEND_SCOPE_KEY = "delivery_gateway.transport_send"


class TransportSendMiddleware:
    """Outermost: notes a WebSocket's `send` as the server gave it (TRANSPORT_SEND_SCOPE_KEY)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            scope[TRANSPORT_SEND_SCOPE_KEY] = send
        return self.app(scope, receive, send)


def transport_send(scope: Scope) -> Any:
    """The server's `send` of this WebSocket, or None when no TransportSendMiddleware is in front of the app."""
    return scope.get(TRANSPORT_SEND_SCOPE_KEY)
