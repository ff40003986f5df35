"""Benchmark: 50 parallel GETs to a local server via aiohttp, our GatewayHttpClient, and httpx; prints ratios.

Never contacts anything but 127.0.0.1 (an ephemeral port, server in its own thread). Run:
    .venv/bin/python bench/http_clients.py [--parallel 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery_gateway.upstream.http import GatewayHttpClient

BODY = '{"messages": [], "meta": {"page": 0, "page_size": 50, "key": "messages"}}'


class LocalServer:
    """aiohttp.web on 127.0.0.1:0, in a thread with its own loop, so client and server don't share a loop."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=BODY, content_type="application/json")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_get("/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
            return runner

        self._runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> LocalServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def timed_rounds(call: Callable[[int], Awaitable[object]], parallel: int, rounds: int) -> list[float]:
    """Round 0 is cold (the pool opens its connections); the rest are warm."""
    out = []
    for r in range(rounds + 1):
        started = time.perf_counter()
        await asyncio.gather(*(call(r * parallel + i) for i in range(parallel)))
        out.append((time.perf_counter() - started) * 1000)
    return out


async def main(parallel: int, rounds: int) -> None:
    with LocalServer() as server:
        path = server.url + "/v1/Conversations/CH00000000000000000000000000000000/Messages"
        results: dict[str, list[float]] = {}

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as session:

            async def via_aiohttp(i: int) -> object:
                async with session.get(path, params={"i": i}) as resp:
                    return await resp.text()

            results["aiohttp"] = await timed_rounds(via_aiohttp, parallel, rounds)

        async with GatewayHttpClient(concurrency=parallel) as gateway:

            async def via_gateway(i: int) -> object:
                return await gateway.request("GET", path, params={"i": i})

            results["GatewayHttpClient (aiohttp)"] = await timed_rounds(via_gateway, parallel, rounds)

        limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
        async with httpx.AsyncClient(limits=limits) as client:

            async def via_httpx(i: int) -> object:
                return (await client.get(path, params={"i": i})).text

            results["httpx"] = await timed_rounds(via_httpx, parallel, rounds)

    print(f"{parallel} parallel GETs to a local server; ms per round: cold (new conns), then {rounds} warm")
    print(f"{'client':<30}{'cold':>9}{'median':>9}{'min':>9}{'max':>9}")
    for name, (cold, *warm) in results.items():
        print(f"{name:<30}{cold:>9.1f}{statistics.median(warm):>9.1f}{min(warm):>9.1f}{max(warm):>9.1f}")
    base = statistics.median(results["aiohttp"][1:])
    for name in ("httpx", "GatewayHttpClient (aiohttp)"):
        ratio = statistics.median(results[name][1:]) / base
        print(f"ratio {name} / aiohttp (warm median): {ratio:.2f}x")
    print(f"ratio httpx / aiohttp (cold): {results['httpx'][0] / results['aiohttp'][0]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.parallel, args.rounds))
