"""Subprocess entry points for the benchmarks: the emulator, the gateway, and the raw-uvicorn baseline.

Never binds anything but 127.0.0.1 and never outlives its parent: it exits when stdin closes (the bench's pipe).
"""

# Run as `python -m bench.servers {emulator,gateway,raw} ...`; prints one `READY {json}` line once it serves.

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import uvicorn

HOST = "127.0.0.1"


def uvicorn_config(app: object) -> uvicorn.Config:
    """The one uvicorn configuration every benchmarked server uses: 1 worker, no access log, port 0."""
    return uvicorn.Config(app, host=HOST, port=0, log_level="warning", access_log=False, lifespan="on")


async def _serve(app: object, ready: dict[str, object]) -> None:
    server = uvicorn.Server(uvicorn_config(app))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    print("READY " + json.dumps({"url": f"http://{HOST}:{port}", "pid": os.getpid(), **ready}), flush=True)
    # Stop when the parent closes our stdin (or dies): no orphaned servers.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.should_exit = True
    await task


def emulator_app(latency: float, seed: int) -> tuple[object, dict[str, object]]:
    from delivery_gateway.emulator import EmulatorConfig, create_emulator_app

    config = EmulatorConfig(seed=seed, seed_data=True, simulate=False, latency=latency)
    app = create_emulator_app(config)
    store = app.state.emulator.store
    by_name = {c.unique_name: c.sid for c in store.conversations.values()}
    return app, {"account_sid": config.account_sid, "auth_token": config.auth_token, "conversations": by_name}


def gateway_app() -> tuple[object, dict[str, object]]:
    """The gateway exactly as `create_app(Settings())` builds it; configuration comes from the environment."""
    from delivery_gateway import Settings, create_app

    return create_app(Settings()), {}


def raw_app(body_path: str) -> tuple[object, dict[str, object]]:
    """No framework: answers POST /graphql with fixed bytes, 404 otherwise; reads (and drops) the request body."""
    with open(body_path, "rb") as fh:
        body = fh.read()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST" and scope["path"] == "/graphql":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app, {"bytes": len(body)}


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark servers (loopback only)")
    sub = parser.add_subparsers(dest="kind", required=True)
    emu = sub.add_parser("emulator")
    emu.add_argument("--latency", type=float, default=0.0)
    emu.add_argument("--seed", type=int, default=7)
    sub.add_parser("gateway")
    raw = sub.add_parser("raw")
    raw.add_argument("body_path")
    args = parser.parse_args()
    if args.kind == "emulator":
        app, ready = emulator_app(args.latency, args.seed)
    elif args.kind == "gateway":
        app, ready = gateway_app()
    else:
        app, ready = raw_app(args.body_path)
    asyncio.run(_serve(app, ready))


if __name__ == "__main__":
    main()
