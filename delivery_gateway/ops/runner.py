"""Runs one gateway process under uvicorn: listen first, connect the backends, serve, shut down gracefully.

The order is what an operator sees: a busy port fails in one line before anything connects or prints "ready";
a backend that cannot be reached fails in one line naming its setting (no traceback, nothing left open); on
SIGTERM the listening socket closes, subscriptions close with 1001 "going away" (event streams end), requests
in flight finish, the webhook processor drains what it accepted, and the process exits 0.
Never decides what to serve: it runs the app and the `Gateway` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.loops.auto import auto_loop_factory

from delivery_gateway.app import BackendUnavailable, Gateway
from delivery_gateway.http.server import DEFAULT_HEADER_TIMEOUT, http_protocol
from delivery_gateway.http.websocket import GatewayWebSocketProtocol
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ops.gc_policy import apply_serving_gc_policy

log = logging.getLogger("delivery_gateway.startup")


class StartupError(Exception):
    """The process cannot start; the message is one line naming what to change."""


_BIND_REASONS = {
    errno.EADDRINUSE: "the address is already in use (another process listens there); choose another --port",
    errno.EADDRNOTAVAIL: "this machine has no such address; choose another --host",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a busy port is reported before anything else happens."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = _BIND_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        raise StartupError(f"--port {port}: cannot listen on {host}:{port}: {reason}") from None
    return sock


class GatewayServer(uvicorn.Server):
    """uvicorn's server with the gateway's start-up and shutdown order (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway, *, on_ready: Callable[[], None] | None = None):
        super().__init__(config)
        self.gateway = gateway
        self.on_ready = on_ready
        self.terminated = False  # stopped by SIGTERM (exits 0 after a graceful shutdown)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            apply_serving_gc_policy()  # start-up is done: what it built lives as long as the process
            if self.on_ready is not None:
                self.on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in getattr(self, "servers", ()):  # stop accepting before closing what is open
            server.close()
        closed = await self.gateway.close_streams()
        if closed:
            log.info("closed %d subscription connection(s): WebSockets with 1001 (going away), streams ended", closed)
        await super().shutdown(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            self.terminated = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, except that a SIGTERM is not raised again after the graceful shutdown: a process asked to
        stop that stopped cleanly exits 0. A Ctrl-C (SIGINT) still ends in KeyboardInterrupt, as in a terminal."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
        if signal.SIGINT in self._captured_signals and not self.terminated:
            signal.raise_signal(signal.SIGINT)


def server_config(
    app: ASGIApp,
    *,
    shutdown_timeout: int,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    websocket_compression: bool = False,
) -> uvicorn.Config:
    """uvicorn's configuration for a gateway: no logging of its own (ops.logs configures the process), no access
    log (the request log has one line per request), no forwarded headers (the app honours them itself, from
    DELIVERY_GATEWAY_FORWARDED_ALLOW_IPS only: http/forwarded.py; uvicorn's FORWARDED_ALLOW_IPS has no effect),
    an HTTP protocol that bounds how long (`header_timeout` seconds) and how large a request's headers may be
    (http/server.py), and uvicorn's default WebSocket protocol with a cheaper write of a frame built once for many
    sockets and less held per idle connection (http/websocket.py), accepting permessage-deflate only when
    `websocket_compression` is on (DELIVERY_GATEWAY_WEBSOCKET_COMPRESSION)."""
    return uvicorn.Config(
        app,
        lifespan="on",  # the app's lifespan finds the gateway started, and closes it after the connections
        log_config=None,
        log_level=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=shutdown_timeout,
        http=http_protocol(header_timeout),
        ws=GatewayWebSocketProtocol,
        ws_per_message_deflate=websocket_compression,
    )


def served_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """`server_config` with a gateway's settings: what `serve` and `demo` run."""
    return server_config(
        app,
        shutdown_timeout=settings.shutdown_timeout,
        header_timeout=settings.header_timeout,
        websocket_compression=settings.websocket_compression,
    )


T = TypeVar("T")


def run_served(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` (a server's whole life) on the event loop uvicorn chooses by default (`loop="auto"`): uvloop
    when it is installed (it is, with `uvicorn[standard]`), as `uvicorn` on the command line runs an app.
    `asyncio.run` would always take the plain asyncio loop, which costs a server more CPU per request and per
    WebSocket frame."""
    with asyncio.Runner(loop_factory=auto_loop_factory(use_subprocess=False)) as runner:
        return runner.run(main)


async def run_gateway(
    config: uvicorn.Config,
    gateway: Gateway,
    sock: socket.socket,
    *,
    on_ready: Callable[[], None] | None = None,
) -> bool:
    """Starts `gateway` (backends, inbox recovery), then serves `config.app` on `sock` until a signal stops it.

    Raises StartupError (one line) when a backend cannot be reached. Returns True when SIGTERM stopped it.
    """
    try:
        await gateway.start()
    except BackendUnavailable as exc:
        sock.close()
        raise StartupError(str(exc)) from None
    except BaseException:
        sock.close()
        raise
    server = GatewayServer(config, gateway, on_ready=on_ready)
    try:
        await server.serve(sockets=[sock])
    finally:
        if gateway.started:  # uvicorn stopped before the lifespan's shutdown could close it
            await gateway.close()
    return server.terminated
