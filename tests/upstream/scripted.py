"""A tiny scripted HTTP server on an ephemeral port for upstream tests, plus a listener that never accepts.

Test support only: never used by the gateway itself, and never binds a fixed port.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-encoded unless a str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (read-timeout tests)


class ScriptedServer:
    """Answers each path with its scripted replies in order (the last one repeats); 404 for unknown paths.

    Tracks hits per (method, path), each request's headers, requests currently in flight and the maximum seen,
    and the TCP connections requests came on (client address and port: a reused keep-alive connection is one).
    """

    def __init__(self) -> None:
        self._scripts: dict[str, list[Reply]] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.queries: list[dict[str, str]] = []
        self.forms: list[dict[str, str]] = []
        self.form_pairs: list[list[tuple[str, str]]] = []  # keeps repeated keys
        self.headers: list[dict[str, str]] = []
        self.connections: set[tuple[str, int]] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path] = list(replies)

    def count(self, path: str, method: str = "GET") -> int:
        return self.hits[(method, path)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[(request.method, request.path)] += 1
        self.queries.append(dict(request.query))
        self.headers.append(dict(request.headers))
        if request.transport is not None:
            self.connections.add(request.transport.get_extra_info("peername"))
        if request.method == "POST":
            form = await request.post()
            self.forms.append(dict(form))
            self.form_pairs.append([(k, str(v)) for k, v in form.items()])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            replies = self._scripts.get(request.path)
            if not replies:
                reply = Reply(404, {"code": 20404, "message": "The requested resource was not found", "status": 404})
            else:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if reply.delay:
                await asyncio.sleep(reply.delay)
            text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            return web.Response(status=reply.status, text=text, content_type="application/json", headers=reply.headers)
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def serve_scripted() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def unaccepting_listener() -> AsyncIterator[str]:
    """A base URL whose TCP handshakes never complete: a backlog-0 listener whose queue is already full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in [*fillers, listener]:
            sock.close()
