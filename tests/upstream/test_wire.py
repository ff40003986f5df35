"""upstream/wire.py, the GET transport of GatewayHttpClient, against a raw local TCP server that answers exactly the
bytes each test writes: chunked bodies, a server that closes after answering or while a connection is idle, an
answer that stops half-way, one that is not HTTP, charsets; and through GatewayHttpClient, the errors each gives.

Never talks to Twilio or a fixed port.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from delivery_gateway.upstream.backoff import RetryPolicy
from delivery_gateway.upstream.errors import UpstreamTimeout, UpstreamUnavailable
from delivery_gateway.upstream.http import GatewayHttpClient
from delivery_gateway.upstream.wire import WireClient

Answer = Callable[[int], bytes | None]  # the n-th request on the server (from 0) -> bytes written, None: close


def _ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + head.encode()
        + (b"Content-Length: %d\r\n\r\n" % len(body))
        + body
    )


class RawServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""
        self.close_after_answer = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                reply = self.answer(len(self.requests) - 1)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(answer: Answer, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    server = RawServer(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        for writer in server.writers:
            writer.close()
        listener.close()


@asynccontextmanager
async def wire(read_timeout: float = 0.5) -> AsyncIterator[WireClient]:
    client = WireClient(connect_timeout=0.5, read_timeout=read_timeout, pool_size=4)
    try:
        yield client
    finally:
        await client.close()


async def test_request_bytes_and_a_kept_alive_connection() -> None:
    async with raw_server(lambda n: _ok(b'{"n": %d}' % n)) as server, wire() as client:
        for n in range(3):
            status, body, headers = await client.get(
                server.url + "/v1/Conversations/CH1/Messages", [("Order", "desc"), ("PageToken", "a b/c")], {"X": "1"}
            )
            assert (status, json.loads(body), headers["Content-Type"]) == (200, {"n": n}, "application/json")
        assert server.connections == 1
        first = server.requests[0].decode()
        assert first.startswith("GET /v1/Conversations/CH1/Messages?Order=desc&PageToken=a+b/c HTTP/1.1\r\n")
        assert f"\r\nHost: {server.url.removeprefix('http://')}\r\n" in first and "\r\nX: 1\r\n" in first


async def test_a_chunked_body_is_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
    async with raw_server(lambda n: chunked) as server, wire() as client:
        assert (await client.get(server.url + "/x", None, {}))[:2] == (200, b"[1,2]")
        assert (await client.get(server.url + "/x", None, {}))[:2] == (200, b"[1,2]")
        assert server.connections == 1


async def test_connection_close_and_a_server_closing_an_idle_connection_open_a_new_one() -> None:
    async with raw_server(lambda n: _ok(b"{}", "Connection: close")) as server, wire() as client:
        for _ in range(2):
            assert (await client.get(server.url + "/x", None, {}))[0] == 200
        assert server.connections == 2
    async with raw_server(lambda n: _ok(b"{}")) as server, wire() as client:
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        server.writers[0].close()  # the server ends the idle keep-alive connection
        await asyncio.sleep(0.05)
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        assert server.connections == 2


async def test_an_answer_without_a_length_ends_with_its_connection() -> None:
    unmeasured = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1, 2]"
    async with raw_server(lambda n: unmeasured) as server, wire() as client:
        server.close_after_answer = True
        assert (await client.get(server.url + "/x", None, {}))[:2] == (200, b"[1, 2]")
        assert (await client.get(server.url + "/x", None, {}))[:2] == (200, b"[1, 2]")
        assert server.connections == 2


async def test_an_answer_that_stops_half_way_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"
    async with raw_server(lambda n: half if n == 0 else _ok(b"{}")) as server, wire(read_timeout=0.2) as client:
        with pytest.raises(aiohttp.SocketTimeoutError):
            await client.get(server.url + "/x", None, {})
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        assert server.connections == 2


async def test_a_server_that_closes_without_answering_or_answers_garbage_is_a_connection_error() -> None:
    async with raw_server(lambda n: None) as server, wire() as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.get(server.url + "/x", None, {})
    async with raw_server(lambda n: b"NOT HTTP AT ALL\r\n\r\n") as server, wire() as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(server.url + "/x", None, {})


async def test_through_the_http_client_errors_are_typed_and_text_decoded_in_its_charset() -> None:
    def answer(n: int) -> bytes | None:
        if n == 0:
            return None  # dropped: retried (a GET), then answered
        body = '{"name": "café"}'.encode("latin-1")
        return _ok(body).replace(b"application/json", b"application/json; charset=latin-1")

    policy = RetryPolicy(max_retries=2, base=0.001, cap=0.01)
    async with raw_server(answer) as server:
        async with GatewayHttpClient(retry_policy=policy, connect_timeout=0.3, read_timeout=0.3) as http:
            response = await http.request("GET", server.url + "/v1/Conversations")
            assert response.status_code == 200 and json.loads(response.text) == {"name": "café"}
            assert http.calls.count() == 2
    async with raw_server(lambda n: None) as server:
        async with GatewayHttpClient(retry_policy=policy, connect_timeout=0.3, read_timeout=0.3) as http:
            with pytest.raises(UpstreamUnavailable):
                await http.request("GET", server.url + "/v1/Conversations")
    async with raw_server(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") as server:
        async with GatewayHttpClient(retry_policy=policy, connect_timeout=0.3, read_timeout=0.1) as http:
            with pytest.raises(UpstreamTimeout):
                await http.request("GET", server.url + "/v1/Conversations")


async def test_a_cancelled_get_drops_its_connection_and_close_ends_every_connection() -> None:
    async with raw_server(lambda n: b"" if n == 0 else _ok(b"{}")) as server, wire() as client:
        call = asyncio.ensure_future(client.get(server.url + "/x", None, {}))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        assert server.connections == 2 and len(client._open) == 1  # the cancelled one is closed, not left open
    async with raw_server(lambda n: _ok(b"{}")) as server:
        client = WireClient(connect_timeout=0.5, read_timeout=0.5, pool_size=4)
        await client.get(server.url + "/x", None, {})
        await client.close()
        await asyncio.sleep(0.05)
        assert server.writers[0].is_closing()


async def test_urls_it_cannot_get_are_refused() -> None:
    async with wire() as client:
        for url in ("ftp://example.invalid/x", "http:///x"):
            with pytest.raises(aiohttp.InvalidURL):
                await client.get(url, None, {})


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` (key, certificate), made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_https_verifies_the_server_and_keeps_the_connection(tmp_path: Path) -> None:
    key, cert = _certificate(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    async with raw_server(lambda n: _ok(b'{"n": %d}' % n), tls=served) as server:
        trusting = ssl.create_default_context(cafile=str(cert))
        client = WireClient(connect_timeout=2, read_timeout=2, pool_size=2, ssl_context=trusting)
        try:
            for n in range(2):
                status, body, _ = await client.get(server.url + "/v1/Conversations", None, {})
                assert (status, json.loads(body)) == (200, {"n": n})
            assert server.connections == 1
            assert f"\r\nHost: {server.url.removeprefix('https://')}\r\n" in server.requests[0].decode()
        finally:
            await client.close()
        # Python's default context does not trust a self-signed certificate: the connection is refused.
        async with wire() as default:
            with pytest.raises(aiohttp.ClientConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await default.get(server.url + "/v1/Conversations", None, {})


async def test_an_informational_answer_is_skipped_and_a_stray_answer_ends_the_connection() -> None:
    # A 1xx answer (103 Early Hints) comes before the answer itself, as aiohttp reads it.
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + _ok(b'{"n": 1}')
    async with raw_server(lambda n: hints) as server, wire() as client:
        for _ in range(2):
            status, body, headers = await client.get(server.url + "/x", None, {})
            assert (status, body, headers.getall("Content-Length"), "Link" in headers) == (
                200,
                b'{"n": 1}',
                ["8"],
                False,
            )
        assert server.connections == 1
    # Two answers to one request: the first is the answer, unchanged; the connection is not reused.
    twice = _ok(b"{}") + b"HTTP/1.1 200 OK\r\nX-Extra: 1\r\nContent-Length: 4\r\n\r\n[99]"
    async with raw_server(lambda n: twice) as server, wire() as client:
        for _ in range(2):
            status, body, headers = await client.get(server.url + "/x", None, {})
            assert (status, body, headers.getall("Content-Length"), "X-Extra" in headers) == (200, b"{}", ["2"], False)
        assert server.connections == 2


async def test_connections_idle_for_longer_than_the_keep_alive_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("delivery_gateway.upstream.wire.KEEPALIVE", 0.6)
    async with raw_server(lambda n: _ok(b"{}")) as server, wire() as client:
        await asyncio.gather(*(client.get(server.url + "/x", None, {}) for _ in range(3)))
        assert server.connections == 3
        for _ in range(2):  # one connection kept in use, two left idle past the keep-alive
            await asyncio.sleep(0.4)
            assert (await client.get(server.url + "/x", None, {}))[0] == 200
        await asyncio.sleep(0.05)
        assert server.connections == 3
        assert [writer.is_closing() for writer in server.writers].count(False) == 1
        assert len(client._open) == 1


async def test_a_connection_made_after_close_is_not_kept() -> None:
    async with raw_server(lambda n: _ok(b"{}")) as server:
        client = WireClient(connect_timeout=0.5, read_timeout=0.5, pool_size=4)
        call = asyncio.ensure_future(client.get(server.url + "/x", None, {}))
        await asyncio.sleep(0)  # connecting
        await client.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await call
        assert not client._open


async def test_a_get_that_follows_redirects_is_sent_as_before() -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: /y\r\nContent-Length: 0\r\n\r\n"
    async with raw_server(lambda n: moved if n in (0, 2) else _ok(b'{"n": 1}')) as server:
        async with GatewayHttpClient(connect_timeout=0.3, read_timeout=0.3) as http:
            followed = await http.request("GET", server.url + "/x", allow_redirects=True)
            assert (followed.status_code, json.loads(followed.text)) == (200, {"n": 1})
            assert (await http.request("GET", server.url + "/x")).status_code == 302  # the default: not followed


async def test_the_read_timeout_runs_from_the_last_data_and_data_out_of_turn_ends_a_connection() -> None:
    trickle = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"[1", b",2", b"]"]

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for part in trickle:  # 0.6 s in all, never 0.5 s without data
            writer.write(part)
            await asyncio.sleep(0.2)
        writer.close()

    listener = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with wire(read_timeout=0.5) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/x", None, {}))[:2] == (200, b"[1,2]")
    finally:
        listener.close()
    async with raw_server(lambda n: _ok(b"{}")) as server, wire() as client:
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        server.writers[0].write(b"HTTP/1.1 200 OK\r\n")  # bytes while nothing is asked
        await asyncio.sleep(0.05)
        assert (await client.get(server.url + "/x", None, {}))[0] == 200
        assert server.connections == 2


async def test_an_address_that_does_not_answer_is_raced_with_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first address a name resolves to never answers (a listener whose queue is full drops each SYN), the
    # second does: tried after a quarter of a second (aiohttp's happy-eyeballs delay), within the connect timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    for _ in range(8):  # fill the accept queue
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(silent.getsockname())
        fillers.append(filler)
    try:
        async with raw_server(lambda n: _ok(b"{}")) as server:
            port = int(server.url.rsplit(":", 1)[1])
            loop = asyncio.get_running_loop()

            async def resolve(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
                tcp = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
                return [(*tcp, silent.getsockname()), (*tcp, ("127.0.0.1", port))]

            monkeypatch.setattr(loop, "getaddrinfo", resolve)
            client = WireClient(connect_timeout=1.5, read_timeout=1, pool_size=2)
            try:
                assert (await client.get(f"http://twilio.invalid:{port}/x", None, {}))[0] == 200
            finally:
                await client.close()
    finally:
        for sock in (silent, *fillers):
            sock.close()


def test_a_get_connects_on_uvloop_the_loop_serve_runs_on() -> None:
    """`serve` runs on uvloop, whose create_connection takes no happy_eyeballs_delay: the addresses are raced
    before it (aiohappyeyeballs), so a GET works there too (the other tests run on asyncio's own loop)."""
    uvloop = pytest.importorskip("uvloop")

    async def one_get() -> tuple[int, bytes]:
        async with raw_server(lambda n: _ok(b"[1]")) as server, wire() as client:
            status, body, _ = await client.get(server.url + "/x", None, {})
            return status, body

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(one_get()) == (200, b"[1]")
