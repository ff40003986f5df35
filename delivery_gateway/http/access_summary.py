"""A terminal-friendly access log for `delivery-gateway demo`: one summary line a minute (requests by kind and
status class) instead of one line per request, which the demo's simulated webhooks would turn into a flood.

Never reads a request's body, headers or query: it counts paths and statuses only, so nothing secret is logged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _kind(scope: Scope) -> str:
    path = scope.get("path", "")
    if scope["type"] == "websocket":
        return "websocket"
    if path.startswith("/webhooks/"):
        return "webhook"
    if path.startswith("/graphql"):
        return "graphql"
    if path.startswith("/static/") or path in ("/", "/demo"):
        return "page"
    return "other"


class AccessSummary:
    """ASGI wrapper that tallies requests by kind and status class; `line()` renders and resets the tally."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.window: Counter[str] = Counter()
        self.total = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        kind = _kind(scope)
        self.total += 1
        if scope["type"] == "websocket":
            self.window[kind] += 1
            await self.app(scope, receive, send)
            return

        async def tally(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.window[kind if status < 400 else f"{kind} {status // 100}xx"] += 1
            await send(message)

        await self.app(scope, receive, tally)

    def line(self) -> str | None:
        """'12 webhook, 3 graphql, 1 graphql 4xx' for the requests since the last call; None when there were none."""
        if not self.window:
            return None
        text = ", ".join(f"{count} {kind}" for kind, count in sorted(self.window.items()))
        self.window.clear()
        return text

    async def report_every(self, seconds: float, emit: Callable[[str], None]) -> None:
        """Emits a summary line every `seconds` in which something was requested; quiet otherwise."""
        while True:
            await asyncio.sleep(seconds)
            line = self.line()
            if line:
                emit(f"requests in the last {seconds:g} s: {line}")
