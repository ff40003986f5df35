"""Runs one gateway (the test harness's wiring) as a process of its own, for the kill and two-process tests.

Usage: python -m tests.live.gateway_process STORE_URL AUTH_TOKEN [PUBSUB_URL [APPLY_DELAY]]. Prints `PORT <n>` once
serving, then serves until killed; never exits on its own. APPLY_DELAY (seconds) slows each processed batch, so a
test can kill the process while acknowledged events are still waiting in the inbox, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import sys

from delivery_gateway.kernel.settings import Settings
from tests.live.harness import serve_gateway


async def main(store_url: str, auth_token: str, pubsub_url: str = "memory://", apply_delay: str = "0") -> None:
    settings = Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=auth_token,
        DELIVERY_GATEWAY_STORE_URL=store_url,
        DELIVERY_GATEWAY_PUBSUB_URL=pubsub_url,
    )
    async with serve_gateway(settings) as gateway:
        delay = float(apply_delay)
        if delay > 0:
            processor = gateway.app.state.gateway.ingest.processor
            process_batch = processor.process_batch

            async def slow_batch(items):  # the batch itself is applied as usual, only later
                await asyncio.sleep(delay)
                return await process_batch(items)

            processor.process_batch = slow_batch
        print(f"PORT {gateway.base_url.rsplit(':', 1)[1]}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
