"""`delivery-gateway demo` and `delivery-gateway emulator` as a user runs them: real processes on free ports.

Every process is terminated by the test (and killed if it lingers); polling loops are bounded.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.app_support import free_port
from tests.test_cli import CLEAN_ENV, CLI_CWD


def _default_sigint() -> None:
    """In the child, before exec: SIGINT back to its default. A shell starts background jobs (and CI runners may
    start the suite) with SIGINT ignored, and an ignored signal stays ignored across exec; the Ctrl-C these tests
    send must reach the command as it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def command(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        [sys.executable, "-m", "delivery_gateway.cli", *args],
        preexec_fn=_default_sigint,
        env={**CLEAN_ENV, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=CLI_CWD,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(url: str, *, status: int = 200, seconds: float = 30.0, **kwargs) -> httpx.Response:
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2, **kwargs)
            if response.status_code == status:
                return response
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered {status} (last: {last!r})")


def read_until(process: subprocess.Popen, pattern: str, lines: int = 40) -> str:
    seen = []
    for _ in range(lines):
        line = process.stdout.readline()
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"{pattern!r} not printed; got:\n{''.join(seen)}")


def test_emulator_makes_up_credentials_prints_them_and_accepts_only_them():
    port = free_port()
    with command("emulator", "--port", str(port), "--empty") as process:
        banner = read_until(process, r"DELIVERY_GATEWAY_TWILIO_BASE_URL")
        sid = re.search(r"TWILIO_ACCOUNT_SID=(AC[0-9a-f]{32})", banner).group(1)
        token = re.search(r"TWILIO_AUTH_TOKEN=(\S+)", banner).group(1)
        base = f"http://127.0.0.1:{port}"
        ok = wait_for(f"{base}/v1/Conversations", auth=(sid, token))
        assert ok.json()["conversations"] == []
        wrong = httpx.get(f"{base}/v1/Conversations", auth=(sid, "not-the-token"))
        assert wrong.status_code == 401 and wrong.json()["code"] == 20003


def test_emulator_accepts_the_credentials_from_the_environment():
    port = free_port()
    sid, token = "AC" + "ab" * 16, "env-token"
    with command("emulator", "--port", str(port), env={"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token}) as p:
        banner = read_until(p, r"DELIVERY_GATEWAY_TWILIO_BASE_URL")
        assert "made these up" not in banner
        seeded = wait_for(f"http://127.0.0.1:{port}/v1/Conversations", auth=(sid, token))
        assert seeded.json()["conversations"]  # seed data by default


def test_emulator_accepts_an_api_key_pair_as_twilio_does():
    port = free_port()
    key, secret = "SK" + "cd" * 16, "env-api-key-secret"
    env = {"TWILIO_ACCOUNT_SID": "AC" + "ab" * 16, "TWILIO_AUTH_TOKEN": "env-token"}
    with command(
        "emulator", "--port", str(port), "--empty", env={**env, "TWILIO_API_KEY": key, "TWILIO_API_SECRET": secret}
    ) as p:
        banner = read_until(p, r"DELIVERY_GATEWAY_TWILIO_BASE_URL")
        assert key in banner and secret not in banner
        base = f"http://127.0.0.1:{port}"
        assert wait_for(f"{base}/v1/Configuration", auth=(key, secret)).json()["default_chat_service_sid"]
        assert httpx.get(f"{base}/v1/Conversations", auth=(key, "not-the-secret")).status_code == 401


def test_demo_runs_with_no_credentials_and_shows_live_deliveries():
    port, emulator_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    typo = {"DELIVERY_GATEWAY_GRAPHIQL_ON": "true"}  # not a setting: warned about, one line
    with command("demo", "--port", str(port), "--emulator-port", str(emulator_port), env=typo) as process:
        banner = read_until(process, r"Ledger:")
        assert "DEMO MODE" in banner
        assert f"Emulator:  http://127.0.0.1:{emulator_port}" in banner
        ledger = Path(re.search(r"Ledger:\s+(\S+)", banner).group(1))
        ready = wait_for(f"{base}/readyz")
        assert ready.json()["status"] == "ok"
        ide = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
        query = "{ conversations(first: 5) { edges { node { sid messages(last: 5) { edges { node { ticks } } } } } } }"
        answer = httpx.post(f"{base}/graphql", json={"query": query}, timeout=30).json()
        assert "errors" not in answer, answer
        assert len(answer["data"]["conversations"]["edges"]) >= 4

        deadline = time.monotonic() + 30  # the simulator and the live traffic post signed webhooks
        accepted = 0.0
        while time.monotonic() < deadline and not accepted:
            metrics = httpx.get(f"{base}/metrics").text
            accepted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("delivery_gateway_webhooks_received_total{") and 'outcome="accepted"' in line
            )
            time.sleep(0.5)
        assert accepted > 0, "no webhook reached the demo gateway"

        process.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down gracefully, then exits 130 as usual
        assert process.wait(timeout=15) == 130
        rest = process.stdout.read()
        assert "Application shutdown complete" in rest
        assert "Traceback" not in rest
        assert (banner + rest).count("DELIVERY_GATEWAY_GRAPHIQL_ON (in the environment) is not a setting") == 1
        # No access line per request (the simulator's webhooks would flood the terminal), one summary at exit.
        assert "POST /webhooks/twilio" not in banner + rest
        summary = re.search(r"DEMO: +(\d+) requests served", rest)
        assert summary and int(summary.group(1)) > 0, rest
        assert rest.count("Finished server process") == 1  # the emulator's server does not repeat the lines
        assert not ledger.parent.exists(), "the demo's temporary ledger folder was left behind"
