"""`delivery-gateway webhooks install` against the emulator, where service-level webhooks override the account's.

Twilio fires a service's own webhooks instead of the account's once the service has any (Per-Service Webhook
resource), so an account-level install alone leaves the gateway deaf to those services. The command, run as a
process: finds them and says exactly what to run (exit 1, nothing of theirs changed), or with --services points
them at the gateway too; the emulator's own routing then sends every service's events to the gateway.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from delivery_gateway.emulator import EmulatorConfig
from delivery_gateway.emulator.server import serve_emulator
from delivery_gateway.webhooks.install import WEBHOOK_FILTERS
from tests.test_cli import CLEAN_ENV, CLI_CWD

ACCOUNT = "AC" + "0" * 28 + "beef"
TOKEN = "install-test-auth-token"
URL = "https://gateway.example.com/webhooks/twilio"
CRM = "https://crm.example.com/conversations-hook"
PRE = "https://moderation.example.com/pre"
ACCOUNT_WEBHOOKS = "/v1/Configuration/Webhooks"
SERVICE_WEBHOOKS = "/v1/Services/{ChatServiceSid}/Configuration/Webhooks"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def install(base_url: str, *args: str) -> Result:
    """The command as a process, without blocking the loop the emulator answers on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "delivery_gateway.cli",
        "webhooks",
        "install",
        "--url",
        URL,
        *args,
        env={
            **CLEAN_ENV,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "DELIVERY_GATEWAY_TWILIO_BASE_URL": base_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=CLI_CWD,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


async def test_services_with_their_own_webhooks_are_found_named_and_fixed_on_request():
    config = EmulatorConfig(account_sid=ACCOUNT, auth_token=TOKEN, seed=3, seed_data=True, simulate=False)
    async with serve_emulator(config) as emulator:
        state, store = emulator.state, emulator.state.store
        crm = store.create_service("Support")
        state.set_webhook(post_webhook_url=CRM, filters=["onMessageAdded"], service_sid=crm.sid)
        moderated = store.create_service("Moderated")
        store.webhook_settings(moderated.sid).pre_webhook_url = PRE  # a pre-event hook alone overrides too
        done = store.create_service("Already there")
        state.set_webhook(post_webhook_url=URL, filters=WEBHOOK_FILTERS, service_sid=done.sid)
        plain = store.default_service.sid  # no hooks of its own: the account's fire for it
        assert state.webhooks.target(crm.sid).post_webhook_url == CRM  # what hides the gateway

        state.requests.reset()
        result = await install(emulator.base_url)
        assert result.returncode == 1, result.stderr
        assert result.stdout.count("Webhook configuration (") == 1
        assert "Webhook configuration (account default)" in result.stdout
        assert f"after:  post_webhook_url='{URL}' method='POST'" in result.stdout
        stderr = result.stderr.splitlines()
        assert stderr[0] == (
            "delivery-gateway: 2 services have webhooks of their own, which Twilio fires instead of the account's: "
            "the gateway gets no webhooks for their conversations"
        )
        assert (
            f"  {crm.sid} (Support): its own post-event webhook ({CRM}, filters onMessageAdded) replaces the account's"
            in stderr
        )
        assert f"    fix: delivery-gateway webhooks install --url {URL} --service {crm.sid}" in stderr
        assert (
            f"  {moderated.sid} (Moderated): its own pre-event webhook ({PRE}) replaces the account's webhooks"
            in stderr
        )
        assert f"    fix: delivery-gateway webhooks install --url {URL} --service {moderated.sid}" in stderr
        assert stderr[-1] == f"  or all at once: delivery-gateway webhooks install --url {URL} --services"
        assert done.sid not in result.stderr and plain not in result.stderr
        # Told, not changed: the services' own configurations are as they were.
        assert state.webhooks.target(crm.sid).post_webhook_url == CRM
        assert state.webhooks.target(plain).post_webhook_url == URL
        # One read and one write of the account's configuration, the service list, one read per service.
        assert state.requests.snapshot() == {
            f"GET {ACCOUNT_WEBHOOKS}": 1,
            f"POST {ACCOUNT_WEBHOOKS}": 1,
            "GET /v1/Services": 1,
            f"GET {SERVICE_WEBHOOKS}": len(store.services),
        }

        state.requests.reset()
        fixed = await install(emulator.base_url, "--services")
        assert fixed.returncode == 0 and fixed.stderr == "", fixed.stderr
        assert f"Webhook configuration (service {crm.sid} (Support))" in fixed.stdout
        assert f"Webhook configuration (service {moderated.sid} (Moderated))" in fixed.stdout
        assert f"before: post_webhook_url='{CRM}'" in fixed.stdout
        assert state.requests.snapshot() == {
            f"GET {ACCOUNT_WEBHOOKS}": 1,
            f"POST {ACCOUNT_WEBHOOKS}": 1,
            "GET /v1/Services": 1,
            f"GET {SERVICE_WEBHOOKS}": len(store.services),
            f"POST {SERVICE_WEBHOOKS}": 2,
        }
        # Every service's events now reach the gateway, by the emulator's own routing; pre-event hooks are kept.
        for sid in store.services:
            target = state.webhooks.target(sid)
            assert (target.post_webhook_url, target.method, set(target.filters)) == (URL, "POST", set(WEBHOOK_FILTERS))
        assert store.webhook_settings(moderated.sid).pre_webhook_url == PRE

        again = await install(emulator.base_url)
        assert (again.returncode, again.stderr) == (0, "")


async def test_one_service_or_all_of_them_not_both():
    result = await install("http://127.0.0.1:1", "--service", "IS" + "a" * 32, "--services")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "delivery-gateway: --service and --services: give one service, or let --services find every one"
    )


def test_the_installed_filters_name_every_event_the_gateway_applies():
    """What `webhooks install` writes, spelled out: membership events included, so a participant who joins or
    leaves reaches cached lists and answers at once (the emulator fires only filtered events, as Twilio does)."""
    assert WEBHOOK_FILTERS == [
        "onDeliveryUpdated",
        "onMessageAdded",
        "onMessageUpdated",
        "onMessageRemoved",
        "onParticipantAdded",
        "onParticipantUpdated",
        "onParticipantRemoved",
        "onConversationUpdated",
        "onConversationStateUpdated",
    ]
