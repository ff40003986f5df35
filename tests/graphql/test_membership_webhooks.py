"""Membership through `create_app` against the emulator: a participant added or removed over REST (with
`X-Twilio-Webhook-Enabled: true`, so Twilio fires onParticipantAdded / onParticipantRemoved) is let in or refused
at once, with no wait for the participants TTL, and the cached answers about the conversation are dropped.

Upstream calls are counted on the emulator (exact per route); the same steps without the webhook header are the
control: the cached list, and the decision built on it, then stay as they were.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant

from tests.app_support import GatewayOnEmulator, gateway_on_emulator

KEY, SECRET = "SK" + "ab" * 16, "membership-signing-secret-0123456789abcdef"
API_KEY = "membership-api-key-0123456789"
# The gateway reads through the Access Token's service, so over the service-scoped routes.
PARTICIPANTS = "GET /v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants"
CONVERSATION = "GET /v1/Services/{ChatServiceSid}/Conversations/{Sid}"
READ = """
query Read($sid: String!) {
  conversation(sid: $sid) { sid friendlyName participants { identity } }
}
"""


@asynccontextmanager
async def gateway() -> AsyncIterator[GatewayOnEmulator]:
    async with gateway_on_emulator(
        emulator={"seed_data": False, "simulate": False},
        DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS=f"{KEY}:{SECRET}",
        DELIVERY_GATEWAY_API_KEYS=API_KEY,
        DELIVERY_GATEWAY_TTL_PARTICIPANTS=3600,  # far beyond the test: only a webhook can refresh membership
    ) as gw:
        yield gw


def token_for(gw: GatewayOnEmulator, identity: str) -> dict[str, str]:
    token = AccessToken(gw.settings.twilio_account_sid, KEY, SECRET, identity=identity, ttl=600)
    token.add_grant(ChatGrant(service_sid=gw.emulator.state.store.default_service.sid))
    return {"Authorization": f"Bearer {token.to_jwt()}"}


async def read(c: httpx.AsyncClient, headers: dict[str, str], sid: str) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": READ, "variables": {"sid": sid}}, headers=headers)
    assert response.status_code == 200
    return response.json()


def code_of(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def identities(body: dict[str, Any]) -> list[str | None]:
    return sorted((p["identity"] for p in body["data"]["conversation"]["participants"]), key=str)


async def settle(gw: GatewayOnEmulator) -> None:
    """Every webhook the emulator queued is posted, and every one the gateway accepted is applied."""
    await gw.emulator.state.webhooks.drain()
    await gw.gateway.ingest.drain()


def hits(gw: GatewayOnEmulator) -> float:
    metrics = gw.gateway.services.metrics
    return metrics.sample("delivery_gateway_response_cache_requests_total", {"result": "hit"})


async def add_zoe(c: httpx.AsyncClient, gw: GatewayOnEmulator, sid: str, *, webhook: bool) -> str:
    headers = {"X-Twilio-Webhook-Enabled": "true"} if webhook else {}
    async with httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest:
        created = await rest.post(f"/v1/Conversations/{sid}/Participants", data={"Identity": "zoe"}, headers=headers)
    assert created.status_code == 201, created.text
    await settle(gw)
    return created.json()["sid"]


async def remove(gw: GatewayOnEmulator, sid: str, participant_sid: str, *, webhook: bool) -> None:
    headers = {"X-Twilio-Webhook-Enabled": "true"} if webhook else {}
    async with httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest:
        deleted = await rest.delete(f"/v1/Conversations/{sid}/Participants/{participant_sid}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    await settle(gw)


def _rest_auth(gw: GatewayOnEmulator) -> httpx.BasicAuth:
    return httpx.BasicAuth(gw.settings.twilio_account_sid, gw.settings.auth_token or "")


async def test_a_participant_added_by_rest_reads_at_once_and_is_listed():
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="membership")
        store.create_participant(conv.sid, identity="alice")
        zoe = token_for(gw, "zoe")
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            assert code_of(await read(c, zoe, conv.sid)) == "FORBIDDEN"  # the participants list is now cached
            counter = gw.emulator.state.requests
            counter.reset()
            await add_zoe(c, gw, conv.sid, webhook=True)
            counter.reset()
            body = await read(c, zoe, conv.sid)
            assert code_of(body) is None, body
            assert identities(body) == ["alice", "zoe"]
            # One refetch of the evicted list (the access check and the field share it), and the conversation
            # record, never read while zoe was refused.
            assert counter.snapshot() == {PARTICIPANTS: 1, CONVERSATION: 1}
            counter.reset()
            assert identities(await read(c, zoe, conv.sid)) == ["alice", "zoe"]
            assert counter.count() == 0  # the refetched list is cached again


async def test_without_the_webhook_a_new_participant_waits_for_the_participants_ttl():
    """The control: the same REST call without `X-Twilio-Webhook-Enabled` fires no webhook (Twilio fires none for
    REST actions without it), and the cached list keeps the newcomer out."""
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="membership")
        store.create_participant(conv.sid, identity="alice")
        zoe = token_for(gw, "zoe")
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            assert code_of(await read(c, zoe, conv.sid)) == "FORBIDDEN"
            await add_zoe(c, gw, conv.sid, webhook=False)
            gw.emulator.state.requests.reset()
            assert code_of(await read(c, zoe, conv.sid)) == "FORBIDDEN"
            assert gw.emulator.state.requests.count() == 0


async def test_a_removed_participant_is_refused_at_once_and_cached_answers_are_dropped():
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="membership")
        store.create_participant(conv.sid, identity="alice")
        zoe_sid = store.create_participant(conv.sid, identity="zoe").sid
        zoe, full = token_for(gw, "zoe"), {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            first = await read(c, zoe, conv.sid)
            assert identities(first) == ["alice", "zoe"]
            assert await read(c, zoe, conv.sid) == first  # answered from the response cache
            assert identities(await read(c, full, conv.sid)) == ["alice", "zoe"]
            assert hits(gw) == 1
            counter = gw.emulator.state.requests
            await remove(gw, conv.sid, zoe_sid, webhook=True)
            counter.reset()
            refused = await read(c, zoe, conv.sid)
            assert code_of(refused) == "FORBIDDEN" and refused["data"]["conversation"] is None
            assert counter.snapshot() == {PARTICIPANTS: 1}  # the evicted list, refetched once
            counter.reset()
            assert identities(await read(c, full, conv.sid)) == ["alice"]  # executed again, from a fresh list
            # An API key without serviceSid reads the default scope: its cached list was evicted as well.
            assert counter.snapshot() == {"GET /v1/Conversations/{ConversationSid}/Participants": 1}
            assert hits(gw) == 1  # neither answer came from the cache


async def test_an_identity_changed_by_an_update_is_decided_afresh():
    """onParticipantUpdated may change Identity, which decides access: a cached list holding the participant
    under its old identity is evicted (a read-horizon move alone is written in place, at no upstream cost)."""
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="membership")
        store.create_participant(conv.sid, identity="alice")
        bob = store.create_participant(conv.sid, identity="bob")
        message, _ = store.create_message(conv.sid, author="alice", body="hello")
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            assert code_of(await read(c, token_for(gw, "bob"), conv.sid)) is None
            counter = gw.emulator.state.requests
            async with httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest:
                moved = await rest.post(
                    f"/v1/Conversations/{conv.sid}/Participants/{bob.sid}",
                    data={"LastReadMessageIndex": str(message.index)},
                    headers={"X-Twilio-Webhook-Enabled": "true"},
                )
            assert moved.status_code == 200, moved.text
            await settle(gw)
            counter.reset()
            assert code_of(await read(c, token_for(gw, "bob"), conv.sid)) is None
            assert counter.count() == 0  # the horizon was written into the cached list
            async with httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest:
                renamed = await rest.post(
                    f"/v1/Conversations/{conv.sid}/Participants/{bob.sid}",
                    data={"Identity": "robert"},
                    headers={"X-Twilio-Webhook-Enabled": "true"},
                )
            assert renamed.status_code == 200, renamed.text
            await settle(gw)
            counter.reset()
            assert code_of(await read(c, token_for(gw, "bob"), conv.sid)) == "FORBIDDEN"
            assert counter.snapshot() == {PARTICIPANTS: 1}
            assert code_of(await read(c, token_for(gw, "robert"), conv.sid)) is None


HORIZONS = """
query Horizons($sid: String!) { conversation(sid: $sid) { participants { identity lastReadMessageIndex } } }
"""


async def test_a_cleared_read_horizon_is_shown_as_twilio_has_it():
    """Marking everything unread clears the horizon; Twilio leaves null parameters out of a webhook, so the update
    arrives without LastReadMessageIndex. The cached list is refetched (one call), and a horizon set again after
    that is shown too."""
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="membership")
        alice = store.create_participant(conv.sid, identity="alice")
        message, _ = store.create_message(conv.sid, author="bob", body="hello")
        full = {"Authorization": f"Bearer {API_KEY}"}

        async def horizon(c: httpx.AsyncClient) -> int | None:
            body = await c.post("/graphql", json={"query": HORIZONS, "variables": {"sid": conv.sid}}, headers=full)
            [participant] = body.json()["data"]["conversation"]["participants"]
            return participant["lastReadMessageIndex"]

        async def update(index: str) -> None:
            async with httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest:
                response = await rest.post(
                    f"/v1/Conversations/{conv.sid}/Participants/{alice.sid}",
                    data={"LastReadMessageIndex": index},
                    headers={"X-Twilio-Webhook-Enabled": "true"},
                )
            assert response.status_code == 200, response.text
            await settle(gw)

        counter = gw.emulator.state.requests
        async with httpx.AsyncClient(base_url=gw.base_url) as c:
            assert await horizon(c) is None
            await update(str(message.index))  # read: written into the cached list
            counter.reset()
            assert await horizon(c) == message.index
            assert counter.count() == 0
            await update("")  # cleared
            counter.reset()
            assert await horizon(c) is None
            assert counter.snapshot() == {"GET /v1/Conversations/{ConversationSid}/Participants": 1}
            await update(str(message.index))  # read again: the index the ledger already had
            counter.reset()
            assert await horizon(c) == message.index
            assert counter.snapshot() == {"GET /v1/Conversations/{ConversationSid}/Participants": 1}


async def test_a_moved_read_horizon_shows_when_it_moved_as_twilio_then_reports():
    """onParticipantUpdated has no LastReadTimestamp; the horizon written into the cached list takes the update's
    DateUpdated, which is the last_read_timestamp REST reports afterwards (not the previous move's time)."""
    query = """query When($sid: String!) {
      conversation(sid: $sid) { participants { sid lastReadMessageIndex lastReadAt } } }"""
    async with gateway() as gw:
        store = gw.emulator.state.store
        conv = store.create_conversation(friendly_name="horizon times")
        bob = store.create_participant(conv.sid, identity="bob")
        first, _ = store.create_message(conv.sid, author="alice", body="one")
        second, _ = store.create_message(conv.sid, author="alice", body="two")
        headers = {"Authorization": f"Bearer {API_KEY}"}

        async def seen(c: httpx.AsyncClient) -> dict[str, Any]:
            response = await c.post("/graphql", json={"query": query, "variables": {"sid": conv.sid}}, headers=headers)
            return next(p for p in response.json()["data"]["conversation"]["participants"] if p["sid"] == bob.sid)

        async with (
            httpx.AsyncClient(base_url=gw.base_url) as c,
            httpx.AsyncClient(base_url=gw.emulator.base_url, auth=_rest_auth(gw)) as rest,
        ):
            assert (await seen(c))["lastReadAt"] is None  # no horizon yet; the list is now cached
            for message in (first, second):
                moved = await rest.post(
                    f"/v1/Conversations/{conv.sid}/Participants/{bob.sid}",
                    data={"LastReadMessageIndex": str(message.index)},
                    headers={"X-Twilio-Webhook-Enabled": "true"},
                )
                assert moved.status_code == 200, moved.text
                await settle(gw)
                twilio = moved.json()
                shown = await seen(c)
                assert shown["lastReadMessageIndex"] == message.index
                assert shown["lastReadAt"] is not None and twilio["last_read_timestamp"] is not None
                assert shown["lastReadAt"][:19] == twilio["last_read_timestamp"][:19]
