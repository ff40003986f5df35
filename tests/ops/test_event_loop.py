"""The event loop servers run on: uvloop (installed with uvicorn[standard]), as `uvicorn` itself would choose."""

from __future__ import annotations

import asyncio

import uvloop

from delivery_gateway.ops.runner import run_served


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_servers_run_on_uvloop_not_the_plain_asyncio_loop():
    assert isinstance(run_served(_running_loop()), uvloop.Loop)


def test_run_served_returns_what_the_server_returned_and_closes_its_loop():
    loop = run_served(_running_loop())
    assert loop.is_closed()
