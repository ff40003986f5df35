"""Runs one gateway (the test harness's wiring) as a process of its own, for the kill and two-process tests.

Usage: python -m tests.live.gateway_process STORE_URL AUTH_TOKEN [PUBSUB_URL]. Prints `PORT <n>` once serving,
then serves until killed; never exits on its own.
"""

from __future__ import annotations

import asyncio
import sys

from delivery_gateway.kernel.settings import Settings
from tests.live.harness import serve_gateway


async def main(store_url: str, auth_token: str, pubsub_url: str = "memory://") -> None:
    settings = Settings(
        _env_file=None,
        TWILIO_AUTH_TOKEN=auth_token,
        DELIVERY_GATEWAY_STORE_URL=store_url,
        DELIVERY_GATEWAY_PUBSUB_URL=pubsub_url,
    )
    async with serve_gateway(settings) as gateway:
        print(f"PORT {gateway.base_url.rsplit(':', 1)[1]}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
