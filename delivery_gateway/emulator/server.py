"""Runs an emulator under uvicorn on an ephemeral port, for tests, benchmarks and the `demo` command.

Binds 127.0.0.1 port 0 by default and never outlives its `async with` block.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from delivery_gateway.emulator.app import EmulatorState, create_emulator_app
from delivery_gateway.emulator.config import EmulatorConfig


@dataclass(frozen=True)
class RunningEmulator:
    base_url: str  # e.g. http://127.0.0.1:54321: point the twilio SDK's `conversations.base_url` here
    state: EmulatorState
    app: Starlette


@contextlib.asynccontextmanager
async def serve_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Serve a fresh emulator until the block exits; `port=0` lets the OS pick a free port."""
    app = create_emulator_app(config)
    config_ = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config_)
    task = asyncio.create_task(server.serve(), name="emulator-uvicorn")
    try:
        while not server.started:
            if task.done():
                await task  # surfaces the startup error
                raise RuntimeError("emulator server stopped during startup")
            await asyncio.sleep(0.005)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningEmulator(f"http://{host}:{bound_port}", app.state.emulator, app)
    finally:
        server.should_exit = True
        await task
