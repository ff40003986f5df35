"""The command line's contract: `serve` refuses to start without credentials or with bad values, in one line.

Never starts a long-running server: only the fast-failing paths are exercised here (demo/emulator run elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from delivery_gateway.cli import build_parser, main

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DELIVERY_GATEWAY_"))}
# The commands' working folder: no .env file, no test folder shadowing an installed package, and a default
# ledger file (`delivery-gateway.sqlite3`) of this run only, never one another checkout or run left in /tmp.
_CLI_HOME = tempfile.TemporaryDirectory(prefix="delivery-gateway-cli-")
CLI_CWD = _CLI_HOME.name


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "delivery_gateway.cli", *args],
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLI_CWD,
    )


def test_serve_without_credentials_names_the_variable_and_points_at_demo():
    result = run_cli("serve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TWILIO_ACCOUNT_SID" in lines[0]
    assert "delivery-gateway demo" in lines[0]


def test_serve_without_token_names_the_token():
    result = run_cli("serve", env={"TWILIO_ACCOUNT_SID": "AC" + "0" * 32})
    assert result.returncode == 2
    assert "TWILIO_AUTH_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DELIVERY_GATEWAY_CACHE_URL", "memcached://localhost"),
        ("DELIVERY_GATEWAY_PUBSUB_URL", "kafka://x"),
        ("DELIVERY_GATEWAY_STORE_URL", "mysql://x"),
        ("DELIVERY_GATEWAY_STORE_URL", "redis://127.0.0.1:6379/0"),
        ("DELIVERY_GATEWAY_TWILIO_BASE_URL", "not a url"),
        ("TWILIO_ACCOUNT_SID", "ACnothex"),
        ("DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY", "0"),
    ],
)
def test_serve_with_a_bad_value_names_it(variable: str, value: str):
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t", variable: value}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_webhooks_install_rejects_a_malformed_service_sid(monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t")
    assert main(["webhooks", "install", "--url", "https://gw.example/webhooks/twilio", "--service", "IS123"]) == 2


def test_every_documented_command_parses():
    parser = build_parser()
    for argv in (
        ["serve"],
        ["demo", "--port", "9"],
        ["emulator", "--empty"],
        ["migrate"],
        ["webhooks", "install", "--url", "u"],
    ):
        assert callable(parser.parse_args(argv).handler)


@pytest.mark.parametrize("url", ["ftp://gw.example/hook", "http://", "/webhooks/twilio"])
def test_webhooks_install_rejects_a_url_twilio_cannot_call_in_one_line(url: str):
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t"}
    result = run_cli("webhooks", "install", "--url", url, env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--url" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_demo_mode_in_one_line():
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t", "DELIVERY_GATEWAY_DEMO_MODE": "true"}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DELIVERY_GATEWAY_DEMO_MODE" in lines[0] and "delivery-gateway demo" in lines[0]


def test_an_api_key_without_its_secret_is_named():
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t", "TWILIO_API_KEY": "SK" + "2" * 32}
    result = run_cli("serve", env=env)
    assert result.returncode == 2 and "TWILIO_API_SECRET" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_webhooks_install_says_when_it_could_not_reach_twilio():
    from tests.app_support import free_port

    env = {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES": "0",
    }
    result = run_cli("webhooks", "install", "--url", "https://gw.example/webhooks/twilio", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not reach Twilio" in lines[0] and "nothing was changed" in lines[0]
