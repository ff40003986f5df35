"""cProfile of warm chat-screen requests, the gateway app called in-process straight through ASGI (no uvicorn).

Never measures throughput (profiling distorts it) and never talks to anything but its loopback emulator subprocess.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import time
from collections import defaultdict

from bench.chat_screen import CONVERSATION, gateway_env, request_body
from bench.harness import server_process

# Where a frame's file lives → the bucket its own (tottime) time is charged to.
BUCKETS = (
    ("delivery_gateway/", "delivery_gateway (our code)"),
    ("strawberry/", "strawberry"),
    ("graphql/", "graphql-core"),
    ("starlette/", "starlette"),
    ("pydantic", "pydantic"),
    ("aiocache/", "aiocache"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
)

COUNTED = {
    "GraphQL fields executed": ("graphql/execution/executor.py", "execute_field"),
    "field resolvers through Strawberry extensions": ("strawberry/schema/schema_converter.py", "extension_resolver"),
    "asyncio tasks created": ("asyncio/base_events.py", "create_task"),
    "JSON decodes": ("json/decoder.py", "raw_decode"),
}


async def _call(app, body: bytes) -> bytes:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False
    chunks: list[bytes] = []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(chunks)


def _bucket(filename: str, funcname: str) -> str:
    if filename == "~":
        return "C builtins (isinstance, dict/list methods, ...)"
    for needle, name in BUCKETS:
        if needle in filename:
            return name
    return "other"


async def profile_warm(requests: int = 20, top: int = 25) -> str:
    from delivery_gateway import Settings, create_app

    async with server_process(["emulator"]) as emulator:
        settings = Settings(**gateway_env(emulator))
        app = create_app(settings)
        gateway = app.state.gateway
        await gateway.start()
        try:
            body = request_body(emulator.info["conversations"][CONVERSATION])
            await _call(app, body)  # cold: fills the cache
            await _call(app, body)
            started = time.perf_counter()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                await _call(app, body)
            profiler.disable()
            elapsed = (time.perf_counter() - started) / requests * 1000
        finally:
            await gateway.close()
    stats = pstats.Stats(profiler)
    by_bucket: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    total = 0.0
    for (filename, _line, funcname), (_cc, ncalls, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_bucket[_bucket(filename, funcname)] += tottime
        total += tottime
        for label, (file_part, name) in COUNTED.items():
            if file_part in filename and funcname == name:
                counts[label] += ncalls
    out = io.StringIO()
    out.write(
        f"{requests} warm chat-screen requests in-process (ASGI, no uvicorn): {elapsed:.1f} ms each under cProfile\n"
    )
    out.write("per request: " + ", ".join(f"{n // requests} {label}" for label, n in counts.items()) + "\n")
    out.write("own time by package:\n")
    for name, seconds in sorted(by_bucket.items(), key=lambda kv: -kv[1]):
        out.write(f"  {name:<45}{seconds / total * 100:6.1f}%\n")
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


if __name__ == "__main__":
    print(asyncio.run(profile_warm()))
