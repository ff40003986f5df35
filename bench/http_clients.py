"""Benchmark: 50 parallel GETs to a local server via aiohttp, our GatewayHttpClient, and httpx; prints ratios.

Never contacts anything but 127.0.0.1 (an ephemeral port, server in its own thread).
"""

# Run: .venv/bin/python -m bench http [--parallel 50] [--http-rounds 20]
#  or: .venv/bin/python bench/http_clients.py [--parallel 50] [--rounds 20]

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


async def measure(parallel: int, rounds: int) -> dict[str, list[float]]:
    """ms per round for each client: [cold, warm, warm, ...]."""
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
    return results


def ratios(results: dict[str, list[float]]) -> dict[str, float]:
    """Warm-median ratios against aiohttp (the baseline), plus httpx's cold ratio."""
    base = statistics.median(results["aiohttp"][1:])
    out = {
        f"{name} / aiohttp (warm median)": statistics.median(results[name][1:]) / base
        for name in ("httpx", "GatewayHttpClient (aiohttp)")
    }
    out["httpx / aiohttp (cold)"] = results["httpx"][0] / results["aiohttp"][0]
    return out


def render(results: dict[str, list[float]], parallel: int, rounds: int) -> str:
    lines = [f"{parallel} parallel GETs to a local server; ms per round: cold (new conns), then {rounds} warm"]
    lines.append(f"{'client':<30}{'cold':>9}{'median':>9}{'min':>9}{'max':>9}")
    for name, (cold, *warm) in results.items():
        lines.append(f"{name:<30}{cold:>9.1f}{statistics.median(warm):>9.1f}{min(warm):>9.1f}{max(warm):>9.1f}")
    lines += [f"RATIO {name}: {value:.2f}x" for name, value in ratios(results).items()]
    return "\n".join(lines)


async def main(parallel: int, rounds: int) -> None:
    print(render(await measure(parallel, rounds), parallel, rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.parallel, args.rounds))
