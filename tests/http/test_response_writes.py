"""The served protocol writes a response's status line and headers with its first body chunk (one send), and a
head that no body follows in the same step of the event loop (a stream) at the end of that step; over a real
server, plain responses and streams both arrive whole."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from delivery_gateway.http.server import HeaderDeadlineProtocol, _ResponseWrites
from delivery_gateway.ops.runner import server_config


class FakeTransport:
    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.sends.append(b"".join(chunks))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_head_and_body_leave_in_one_send():
    transport = FakeTransport()
    writes = _ResponseWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HEAD")
    assert transport.sends == []
    writes.write(b"BODY")
    writes.write(b"MORE")
    assert transport.sends == [b"HEADBODY", b"MORE"]
    await asyncio.sleep(0)
    assert transport.sends == [b"HEADBODY", b"MORE"]


async def test_a_head_alone_leaves_at_the_end_of_the_step_and_before_a_close():
    transport = FakeTransport()
    writes = _ResponseWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HEAD")
    await asyncio.sleep(0)
    assert transport.sends == [b"HEAD"]
    writes.write(b"BODY")
    assert transport.sends == [b"HEAD", b"BODY"]

    transport = FakeTransport()
    writes = _ResponseWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HEAD")
    writes.close()
    assert transport.sends == [b"HEAD"] and transport.closed


async def test_a_served_response_and_a_stream_arrive_whole():
    release = asyncio.Event()

    async def plain(request):
        return PlainTextResponse("hello " * 1000)

    async def stream(request):
        async def chunks():
            yield b"first;"
            await release.wait()
            yield b"second"

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/plain", plain), Route("/stream", stream)])
    config = server_config(app, shutdown_timeout=1)  # exactly what `serve` runs: its HTTP protocol included
    assert config.http is not None and issubclass(config.http, HeaderDeadlineProtocol)  # type: ignore[arg-type]
    config.host, config.port = "127.0.0.1", 0
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "server stopped during startup"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # keep-alive: one connection, several responses
                response = await client.get("/plain")
                assert response.status_code == 200 and response.text == "hello " * 1000
            async with client.stream("GET", "/stream") as streamed:
                assert streamed.status_code == 200  # the head arrived before the stream's second chunk
                chunks = streamed.aiter_bytes()
                assert await asyncio.wait_for(chunks.__anext__(), 5) == b"first;"
                release.set()
                assert b"".join([c async for c in chunks]) == b"second"
    finally:
        server.should_exit = True
        await task
