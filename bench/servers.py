"""Subprocess entry points for the benchmarks: the emulator, the gateway, and the raw references they are held to.

Never binds anything but 127.0.0.1 and never outlives its parent: it exits when stdin closes (the bench's pipe).
"""

# Run as `python -m bench.servers {emulator,gateway,raw,raw-ws} ...`; prints one `READY {json}` line once it serves.

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from delivery_gateway.ops.gc_policy import apply_serving_gc_policy
from delivery_gateway.ops.runner import run_served, server_config

HOST = "127.0.0.1"
TIMELINE_PATH = "/__bench/timeline"
LATENCY_PATH = "/__bench/latency"
GRAPHQL_TRANSPORT_WS = "graphql-transport-ws"


def uvicorn_config(app: object) -> uvicorn.Config:
    """The one uvicorn configuration every benchmarked server uses: the one `delivery-gateway serve` runs
    (ops.runner.server_config: no access log, no uvicorn forwarded-headers layer, bounded headers), one worker, on
    a free loopback port. The raw references run under it too, so the gateway and its reference pay for the same
    server."""
    config = server_config(app, shutdown_timeout=5)  # type: ignore[arg-type]
    config.host, config.port = HOST, 0
    return config


async def _serve(app: object, ready: dict[str, object], *, serving_gc: bool = False) -> None:
    """`serving_gc`: once started, the garbage-collector policy `delivery-gateway serve` applies at the same point
    (ops/runner.py, ops/gc_policy.py: start-up heap frozen, young threshold raised)."""
    server = uvicorn.Server(uvicorn_config(app))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.005)
    if serving_gc:
        apply_serving_gc_policy()
    port = server.servers[0].sockets[0].getsockname()[1]
    print("READY " + json.dumps({"url": f"http://{HOST}:{port}", "pid": os.getpid(), **ready}), flush=True)
    # Stop when the parent closes our stdin (or dies): no orphaned servers.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.should_exit = True
    await task


# --------------------------------------------------------------------------------------------------- emulator


class RequestTimeline:
    """ASGI wrapper recording when each REST request to the wrapped app started and finished (CLOCK_MONOTONIC).

    Bench-side only: it changes nothing in the emulator's behaviour. `GET /__bench/timeline` returns the requests
    recorded since the previous read and forgets them. CLOCK_MONOTONIC is system-wide on Linux, so the bench
    process can compare these times with its own. `POST /__bench/latency?seconds=S` turns the emulator's own
    latency knob (`EmulatorConfig.latency`, read on every request), so one emulator can serve several rows.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.entries: list[tuple[float, float, str, str]] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == TIMELINE_PATH:
            entries, self.entries = self.entries, []
            await JSONResponse([list(e) for e in entries])(scope, receive, send)
            return
        if scope["path"] == LATENCY_PATH:
            request = Request(scope, receive)
            self.app.state.emulator.config.latency = float(request.query_params["seconds"])
            await JSONResponse({"latency": self.app.state.emulator.config.latency})(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.entries.append((started, time.monotonic(), scope["method"], scope["path"]))


def emulator_app(latency: float, seed: int) -> tuple[object, dict[str, object]]:
    from delivery_gateway.emulator import EmulatorConfig, create_emulator_app

    config = EmulatorConfig(seed=seed, seed_data=True, simulate=False, latency=latency)
    app = create_emulator_app(config)
    state = app.state.emulator
    by_name = {c.unique_name: c.sid for c in state.store.conversations.values()}
    ready = {
        "account_sid": config.account_sid,
        "auth_token": config.auth_token,
        "service_sid": state.default_service_sid,
        "conversations": by_name,
        "latency": latency,
    }
    return RequestTimeline(app), ready


# --------------------------------------------------------------------------------------------------- gateway


def gateway_app() -> tuple[object, dict[str, object]]:
    """The gateway exactly as `create_app(Settings())` builds it; configuration comes from the environment."""
    from bench.gateway import create_app, settings_from_env

    return create_app(settings_from_env()), {}


# --------------------------------------------------------------------------------------------------- references


def raw_app(body_path: str) -> tuple[object, dict[str, object]]:
    """The raw stack: Starlette under the same uvicorn, answering POST /graphql with fixed bytes (body read).

    The bytes are read from `body_path` on the first request, so the server can start before they exist.
    """
    body: list[bytes] = []

    async def graphql(request: Request) -> Response:
        await request.body()
        if not body:
            body.append(await asyncio.to_thread(Path(body_path).read_bytes))
        return Response(body[0], media_type="application/json")

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])]), {}


def raw_ws_app() -> tuple[object, dict[str, object]]:
    """The raw fan-out: graphql-transport-ws handshakes only, then `POST /broadcast` sends its body, pre-serialised,
    as one text frame to every subscribed socket, one after another (what a fan-out costs without any GraphQL)."""
    subscribed: list[WebSocket] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS)
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                kind = message.get("type")
                if kind == "connection_init":
                    await websocket.send_text('{"type":"connection_ack"}')
                elif kind == "subscribe":
                    subscribed.append(websocket)
                elif kind == "ping":
                    await websocket.send_text('{"type":"pong"}')
        except WebSocketDisconnect:
            pass
        finally:
            if websocket in subscribed:
                subscribed.remove(websocket)

    async def broadcast(request: Request) -> Response:
        frame = (await request.body()).decode()
        sent = failed = 0
        for websocket in list(subscribed):
            try:
                await websocket.send_text(frame)
                sent += 1
            except Exception:
                failed += 1
        return JSONResponse({"sent": sent, "failed": failed})

    async def stats(request: Request) -> Response:
        return JSONResponse({"subscribed": len(subscribed)})

    routes = [
        WebSocketRoute("/graphql", endpoint),
        Route("/broadcast", broadcast, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ]
    return Starlette(routes=routes), {}


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark servers (loopback only)")
    sub = parser.add_subparsers(dest="kind", required=True)
    emu = sub.add_parser("emulator")
    emu.add_argument("--latency", type=float, default=0.0, help="seconds added to every REST response")
    emu.add_argument("--seed", type=int, default=7)
    gateway = sub.add_parser("gateway")
    gateway.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's default GC thresholds (by default the gateway runs under the policy `serve` applies)",
    )
    raw = sub.add_parser("raw")
    raw.add_argument("body_path")
    sub.add_parser("raw-ws")
    args = parser.parse_args()
    if args.kind == "emulator":
        app, ready = emulator_app(args.latency, args.seed)
    elif args.kind == "gateway":
        app, ready = gateway_app()
    elif args.kind == "raw":
        app, ready = raw_app(args.body_path)
    else:
        app, ready = raw_ws_app()
    serving_gc = args.kind == "gateway" and not args.default_gc  # as `delivery-gateway serve` runs it
    run_served(
        _serve(app, ready, serving_gc=serving_gc)
    )  # the loop `delivery-gateway serve` runs on (uvloop), for every server


if __name__ == "__main__":
    main()
