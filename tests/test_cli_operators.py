"""`delivery-gateway serve` as an operator runs it: real processes on free ports, against the emulator.

The banner and its warnings, one-line start-up failures (dead Redis, unusable ledger, busy port), JSON logs without
secrets, and a SIGTERM with a subscription open and a webhook in flight. Every process is stopped by its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
import websockets
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.server import serve_emulator
from delivery_gateway.emulator.webhook_events import delivery_params
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.ledger import create_ledger
from tests.live.harness import sign
from tests.test_cli import CLEAN_ENV, CLI_CWD, run_cli

ACCOUNT = "AC" + "0" * 28 + "9f3e"
AUTH_TOKEN = "operator-test-auth-token-0123"
API_KEY = "operator-test-api-key-0123456789"
REDIS_PASSWORD = "operator-test-redis-password"
DEAD = "127.0.0.1:1"  # nothing listens on port 1


def serve_env(**extra: str) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, **extra}


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    base_url: str = ""

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def serve_process(env: dict[str, str], *args: str) -> AsyncIterator[ServeProcess]:
    """`delivery-gateway serve --port 0` until it prints that it is ready; SIGTERMed (then killed) at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "delivery_gateway.cli",
        "serve",
        "--port",
        "0",
        *args,
        env={**CLEAN_ENV, "PYTHONUNBUFFERED": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=CLI_CWD,
    )
    running = ServeProcess(process)

    async def collect() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            running.lines.append(raw.decode().rstrip("\n"))

    reader = asyncio.create_task(collect())
    try:
        async with asyncio.timeout(30):
            while not running.base_url:
                for line in running.lines:
                    if "ready on http://" in line:
                        running.base_url = "http://" + line.split("ready on http://", 1)[1].split()[0].strip('",')
                if process.returncode is not None:
                    raise AssertionError(f"serve exited early:\n{running.output}")
                await asyncio.sleep(0.05)
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.wait_for(reader, 10)


async def test_serve_prints_one_banner_and_one_warning_per_unsafe_setting_without_secrets(tmp_path):
    env = serve_env(
        DELIVERY_GATEWAY_STORE_URL=f"sqlite:///{tmp_path}/ledger.sqlite3",
        DELIVERY_GATEWAY_CACHE_URL=f"redis://:{REDIS_PASSWORD}@{DEAD}/0",  # optional: a warning, not a failure
        DELIVERY_GATEWAY_API_KEYS="short-key",
        DELIVERY_GATEWAY_ALLOWED_ORIGINS="*",
        DELIVERY_GATEWAY_API_KEY="a typo of API_KEYS",
        DELIVERY_GATEWAY_CHAT_SERVICE_SIDS=",",
    )
    async with serve_process(env, "--host", "0.0.0.0") as gateway:
        pass
    assert gateway.process.returncode == 0  # SIGTERM: graceful shutdown, then a clean exit
    output = gateway.output
    assert output.count("delivery-gateway 0.1.0 starting") + output.count("delivery-gateway unknown starting") == 1
    assert f"ledger:         SQLite file {tmp_path}/ledger.sqlite3" in output
    assert f"cache:          redis://:***@{DEAD}/0" in output
    assert "account AC…9f3e" in output and ACCOUNT not in output
    warnings = [line for line in gateway.lines if line.startswith("WARNING:")]
    expected = [
        "behind a proxy set DELIVERY_GATEWAY_PUBLIC_URL",
        "DELIVERY_GATEWAY_INTROSPECTION is on against Twilio",
        "DELIVERY_GATEWAY_GRAPHIQL is on against Twilio",
        "/metrics answers anyone who reaches 0.0.0.0",
        "DELIVERY_GATEWAY_ALLOWED_ORIGINS is '*'",
        "DELIVERY_GATEWAY_API_KEYS: 1 key shorter than 16 characters",
        "DELIVERY_GATEWAY_API_KEY (in the environment) is not a setting",
        "DELIVERY_GATEWAY_CHAT_SERVICE_SIDS is set but lists nothing",
        f"DELIVERY_GATEWAY_CACHE_URL: cannot use redis://:***@{DEAD}/0",
    ]
    for text in expected:
        assert sum(text in line for line in warnings) == 1, (text, warnings)
    assert len(warnings) == len(expected), warnings
    banner_end = max(i for i, line in enumerate(gateway.lines) if line.startswith("WARNING:"))
    assert banner_end < next(i for i, line in enumerate(gateway.lines) if "ready on" in line)
    for secret in (AUTH_TOKEN, "short-key", REDIS_PASSWORD, "a typo of API_KEYS"):
        assert secret not in output
    assert "Traceback" not in output


def _dead_backends() -> list[tuple[str, str]]:
    """A dead server for each networked engine the settings accept (the ledger's engines change over time)."""
    dead = [
        ("DELIVERY_GATEWAY_PUBSUB_URL", f"redis://:{REDIS_PASSWORD}@{DEAD}/0"),
        ("DELIVERY_GATEWAY_STORE_URL", "sqlite:///{not_a_folder}/ledger.sqlite3"),
    ]
    candidates = [f"redis://:{REDIS_PASSWORD}@{DEAD}/0", f"postgresql://gateway:{REDIS_PASSWORD}@{DEAD}/ledger"]
    for url in candidates:
        try:
            Settings(_env_file=None, DELIVERY_GATEWAY_STORE_URL=url)
        except ValueError:
            continue
        dead.append(("DELIVERY_GATEWAY_STORE_URL", url))
    return dead


@pytest.mark.parametrize(("variable", "value"), _dead_backends())
def test_a_dead_backend_fails_in_one_line_naming_its_variable(tmp_path, variable: str, value: str):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    value = value.format(not_a_folder=not_a_folder)
    result = run_cli("serve", "--port", "0", env=serve_env(**{variable: value}))
    assert result.returncode == 2
    output = result.stdout + result.stderr
    failures = [line for line in output.splitlines() if line.startswith("delivery-gateway:")]
    assert len(failures) == 1, output
    assert failures[0].startswith(f"delivery-gateway: {variable}: cannot use ")
    assert output.rstrip().endswith(failures[0])  # the last word, nothing after it
    for unwanted in ("Traceback", "Unclosed", "unclosed", "ready on", "Started server process", REDIS_PASSWORD):
        assert unwanted not in output


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_fails_in_one_line_before_anything_starts(command: str):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        # Pub/sub is dead too: a port reported first proves nothing else was tried before it.
        env = serve_env(DELIVERY_GATEWAY_PUBSUB_URL=f"redis://{DEAD}/0")
        result = run_cli(command, "--port", port, env=env)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"delivery-gateway: --port {port}: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another process listens there); choose another --port"
    ]


def _receipt_in(emulator) -> tuple[str, dict[str, str]]:
    """A receipt with a status in a conversation of the default service, and its onDeliveryUpdated form."""
    store = emulator.state.store
    for conversation in store.conversations.values():
        if conversation.service_sid != store.default_service.sid:
            continue
        for message in store.messages[conversation.sid].values():
            for receipt in store.receipts_of(message.sid):
                if receipt.status:
                    return conversation.sid, {"EventType": "onDeliveryUpdated", **delivery_params(store, receipt)}
    raise AssertionError("the seed has no receipt")


async def test_sigterm_closes_subscriptions_with_1001_and_applies_the_webhook_in_flight(tmp_path):
    store_url = f"sqlite:///{tmp_path}/ledger.sqlite3"
    config = EmulatorConfig(account_sid=ACCOUNT, auth_token=AUTH_TOKEN, seed=7, seed_data=True, simulate=False)
    async with serve_emulator(config) as emulator:
        conversation, form = _receipt_in(emulator)
        env = serve_env(
            DELIVERY_GATEWAY_TWILIO_BASE_URL=emulator.base_url,
            DELIVERY_GATEWAY_STORE_URL=store_url,
            DELIVERY_GATEWAY_API_KEYS=API_KEY,
            DELIVERY_GATEWAY_LOG_FORMAT="json",
        )
        async with serve_process(env) as gateway:
            ws_url = gateway.base_url.replace("http", "ws", 1) + "/graphql"
            ws = await websockets.connect(ws_url, subprotocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {API_KEY}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = "subscription T($c: String!) { deliveryUpdates(conversationSid: $c) { cursor } }"
            payload = {"query": query, "variables": {"c": conversation}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

            # A webhook whose body is still arriving when SIGTERM comes.
            url = f"{gateway.base_url}/webhooks/twilio"
            body = urlencode(form).encode()
            head = (
                f"POST /webhooks/twilio HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Twilio-Signature: {sign(AUTH_TOKEN, url, form)['X-Twilio-Signature']}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            writer.write(head + body[:20])
            await writer.drain()
            await asyncio.sleep(0.3)

            gateway.process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "going away")

            writer.write(body[20:])
            await writer.drain()
            response = (await asyncio.wait_for(reader.read(), 10)).decode()
            writer.close()
            assert response.startswith("HTTP/1.1 200"), response
            assert '"accepted"' in response
            assert await asyncio.wait_for(gateway.process.wait(), 20) == 0

    ledger = create_ledger(store_url)
    await ledger.start()
    try:
        applied = await ledger.receipt(form["DeliveryReceiptSid"])
        assert applied is not None and applied.status.value == form["Status"]
        assert await ledger.inbox_pending() == []  # processed before the process exited, nothing left over
    finally:
        await ledger.close()

    entries = [json.loads(line) for line in gateway.lines]  # every line is one JSON object
    requests = [e for e in entries if e["logger"] == "delivery_gateway.requests"]
    webhook = next(e for e in requests if e["path"] == "/webhooks/twilio")
    assert (webhook["status"], webhook["event_type"], webhook["outcome"]) == (200, "onDeliveryUpdated", "accepted")
    socket_line = next(e for e in requests if e["method"] == "WEBSOCKET")
    assert (socket_line["close_code"], socket_line["caller"], socket_line["operation"]) == (1001, "internal", "T")
    output = gateway.output
    assert "[accepted]" not in output and "connection open" not in output and "connection closed" not in output
    assert "Traceback" not in output and "Unclosed" not in output
    for secret in (AUTH_TOKEN, API_KEY):
        assert secret not in output
