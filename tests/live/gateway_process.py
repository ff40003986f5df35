"""Runs one gateway (the test harness's wiring) as a process of its own, for the kill and two-process tests.

Usage: python -m tests.live.gateway_process STORE_URL AUTH_TOKEN [PUBSUB_URL [APPLY_DELAY]]. Prints `PORT <n>` once
serving, then serves until killed, or until SIGTERM (a deploy's stop: the gateway closes gracefully). APPLY_DELAY
(seconds) slows each processed batch, so a test can kill the process while acknowledged events are still waiting in
the inbox, whatever the machine's speed. Other settings come from the environment (DELIVERY_GATEWAY_*); with
DELIVERY_GATEWAY_TWILIO_BASE_URL set, the gateway talks to that emulator through its real upstream client.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from delivery_gateway.kernel.settings import Settings
from tests.app_support import NO_UPSTREAM
from tests.live.harness import serve_gateway


async def main(store_url: str, auth_token: str, pubsub_url: str = "memory://", apply_delay: str = "0") -> None:
    settings = Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=auth_token,
        DELIVERY_GATEWAY_STORE_URL=store_url,
        DELIVERY_GATEWAY_PUBSUB_URL=pubsub_url,
    )
    upstream = None if os.environ.get("DELIVERY_GATEWAY_TWILIO_BASE_URL") else NO_UPSTREAM
    async with serve_gateway(settings, upstream=upstream) as gateway:
        delay = float(apply_delay)
        if delay > 0:
            processor = gateway.app.state.gateway.ingest.processor
            process_batch = processor.process_batch

            async def slow_batch(items):  # the batch itself is applied as usual, only later
                await asyncio.sleep(delay)
                return await process_batch(items)

            processor.process_batch = slow_batch
        print(f"PORT {gateway.base_url.rsplit(':', 1)[1]}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
