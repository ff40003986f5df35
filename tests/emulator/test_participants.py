"""Participants as Twilio has them: receipts only for those present when a message was created, removal that
keeps receipts, updates that move read horizons back, Group MMS participants, never-read horizons.

In-process ASGI client over both URL scopes (account-level and /v1/Services/{ChatServiceSid}).
"""

from __future__ import annotations

import httpx
import pytest

from delivery_gateway.emulator import EmulatorState, create_emulator_app
from tests.emulator.conftest import fast_config

SMS = {"MessagingBinding.Address": "+15550000001", "MessagingBinding.ProxyAddress": "+15017122661"}
LATE = {"MessagingBinding.Address": "+15550000003", "MessagingBinding.ProxyAddress": "+15017122661"}
GMMS = {"Identity": "gmms.user", "MessagingBinding.ProjectedAddress": "+15017122662"}
WEBHOOK_ON = {"X-Twilio-Webhook-Enabled": "true"}


@pytest.fixture(params=["account", "service"])
async def scoped(request):
    """(client, state, conversation URL) for a fresh conversation with an agent and one SMS participant, served
    under the account-level URLs or under /v1/Services/{sid} of a non-default service."""
    app = create_emulator_app(fast_config(simulate=False, failure_rate=0))
    state: EmulatorState = app.state.emulator
    auth = (state.config.account_sid, state.config.auth_token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e", auth=auth) as http:
        if request.param == "account":
            root = "/v1"
        else:
            root = f"/v1/Services/{state.store.create_service('EU').sid}"
        sid = (await http.post(f"{root}/Conversations", data={"FriendlyName": "p"})).json()["sid"]
        base = f"{root}/Conversations/{sid}"
        for form in ({"Identity": "agent"}, SMS):
            assert (await http.post(f"{base}/Participants", data=form)).status_code == 201
        yield http, state, base
    await state.aclose()


async def send(http: httpx.AsyncClient, base: str, body: str) -> dict:
    response = await http.post(f"{base}/Messages", data={"Author": "agent", "Body": body})
    assert response.status_code == 201, response.text
    return response.json()


async def receipts(http: httpx.AsyncClient, base: str, message: dict) -> list[dict]:
    return (await http.get(f"{base}/Messages/{message['sid']}/Receipts")).json()["delivery_receipts"]


async def test_a_late_joiner_has_receipts_only_for_later_messages(scoped):
    http, _, base = scoped
    before = await send(http, base, "before")
    late = (await http.post(f"{base}/Participants", data=LATE)).json()
    after = await send(http, base, "after")
    assert late["sid"] not in {r["participant_sid"] for r in await receipts(http, base, before)}
    assert late["sid"] in {r["participant_sid"] for r in await receipts(http, base, after)}
    assert before["delivery"]["total"] == 1 and after["delivery"]["total"] == 2
    refetched = (await http.get(f"{base}/Messages/{before['sid']}")).json()
    assert refetched["delivery"]["total"] == 1  # the summary does not grow when someone joins


async def test_a_removed_participant_leaves_the_list_but_its_receipts_remain(scoped):
    http, state, base = scoped
    sms = next(p for p in (await http.get(f"{base}/Participants")).json()["participants"] if p["messaging_binding"])
    message = await send(http, base, "to everyone")
    deleted = await http.delete(f"{base}/Participants/{sms['sid']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    listed = (await http.get(f"{base}/Participants")).json()["participants"]
    assert sms["sid"] not in {p["sid"] for p in listed} and len(listed) == 1
    assert (await http.get(f"{base}/Participants/{sms['sid']}")).status_code == 404
    assert (await http.delete(f"{base}/Participants/{sms['sid']}")).status_code == 404
    [kept] = await receipts(http, base, message)
    assert kept["participant_sid"] == sms["sid"]
    assert (await http.get(f"{base}/Messages/{message['sid']}/Receipts/{kept['sid']}")).status_code == 200
    assert (await http.get(f"{base}/Messages/{message['sid']}")).json()["delivery"]["total"] == 1
    later = await send(http, base, "after the removal")
    assert await receipts(http, base, later) == [] and later["delivery"] is None
    await state.simulator.advance_all()  # a removed participant's pending receipt still moves (the carrier has it)
    [moved] = await receipts(http, base, message)
    assert moved["status"] == "delivered" and moved["date_updated"] is not None
    # The same address may join again, as a new participant with a new SID.
    again = await http.post(f"{base}/Participants", data=SMS)
    assert again.status_code == 201 and again.json()["sid"] != sms["sid"]


async def test_participant_update_moves_the_read_horizon_back_and_clears_it(scoped):
    http, _, base = scoped
    agent = (await http.get(f"{base}/Participants/agent")).json()  # fetch accepts the identity too
    assert agent["last_read_message_index"] is None and agent["last_read_timestamp"] is None  # never read
    for n in range(3):
        await send(http, base, f"m{n}")
    url = f"{base}/Participants/{agent['sid']}"
    read = (await http.post(url, data={"LastReadMessageIndex": "2"})).json()
    assert read["last_read_message_index"] == 2 and read["last_read_timestamp"] is not None
    back = await http.post(url, data={"LastReadMessageIndex": "0"})
    assert back.status_code == 200 and back.json()["last_read_message_index"] == 0  # marked unread
    assert (await http.get(url)).json()["last_read_message_index"] == 0
    cleared = (await http.post(url, data={"LastReadMessageIndex": ""})).json()
    assert cleared["last_read_message_index"] is None and cleared["last_read_timestamp"] is None
    attributes = (await http.post(url, data={"Attributes": '{"vip": true}'})).json()
    assert attributes["attributes"] == '{"vip": true}' and attributes["last_read_message_index"] is None
    for bad in ({"LastReadMessageIndex": "x"}, {"LastReadMessageIndex": "-1"}, {"Attributes": "{nope"}):
        response = await http.post(url, data=bad)
        assert (response.status_code, response.json()["code"]) == (400, 20001)
    assert (await http.post(f"{base}/Participants/MB{'0' * 32}", data={"Attributes": "{}"})).status_code == 404


async def test_participant_update_fires_on_participant_updated_with_the_header(scoped):
    http, state, base = scoped
    conversation_sid = base.rsplit("/", 1)[-1]
    service_sid = state.store.conversations[conversation_sid].service_sid
    emitted = []

    def record(service: str | None, event: str, params: dict) -> bool:
        if event.startswith("onParticipant"):
            emitted.append((service, event, params))
        return True

    state.webhooks.emit = record
    agent = (await http.get(f"{base}/Participants/agent")).json()
    await send(http, base, "m0")
    await http.post(f"{base}/Participants/{agent['sid']}", data={"LastReadMessageIndex": "0"})
    assert emitted == []  # a REST action fires its webhook only on request
    await http.post(f"{base}/Participants/{agent['sid']}", data={"LastReadMessageIndex": ""}, headers=WEBHOOK_ON)
    [(service, event, params)] = emitted
    assert (service, event) == (service_sid, "onParticipantUpdated")
    assert params["ParticipantSid"] == agent["sid"] and "LastReadMessageIndex" not in params  # null: left out
    await http.delete(f"{base}/Participants/{agent['sid']}", headers=WEBHOOK_ON)
    assert emitted[-1][1] == "onParticipantRemoved"


async def test_participant_update_renames_a_chat_participant_only(scoped):
    http, _, base = scoped
    agent = (await http.get(f"{base}/Participants/agent")).json()
    renamed = await http.post(f"{base}/Participants/{agent['sid']}", data={"Identity": "agent.two"})
    assert renamed.status_code == 200 and renamed.json()["identity"] == "agent.two"
    assert (await http.get(f"{base}/Participants/agent.two")).json()["sid"] == agent["sid"]
    await http.post(f"{base}/Participants", data={"Identity": "other"})
    taken = await http.post(f"{base}/Participants/{agent['sid']}", data={"Identity": "other"})
    assert taken.status_code == 409 and taken.json()["code"] == 50433
    sms = next(p for p in (await http.get(f"{base}/Participants")).json()["participants"] if p["identity"] is None)
    refused = await http.post(f"{base}/Participants/{sms['sid']}", data={"Identity": "sms.user"})
    assert refused.status_code == 400


async def test_group_mms_participants_are_sdk_participants_without_receipts(scoped):
    http, _, base = scoped
    created = await http.post(f"{base}/Participants", data=GMMS)
    assert created.status_code == 201, created.text
    gmms = created.json()
    assert gmms["identity"] == "gmms.user"
    assert gmms["messaging_binding"] == {"type": "sms", "projected_address": "+15017122662"}  # spec's createGmms
    assert gmms["last_read_message_index"] is None
    message = await send(http, base, "hello group")
    assert gmms["sid"] not in {r["participant_sid"] for r in await receipts(http, base, message)}
    assert message["delivery"]["total"] == 1  # only the SMS participant
    read = await http.post(f"{base}/Participants/{gmms['sid']}", data={"LastReadMessageIndex": "0"})
    assert read.json()["last_read_message_index"] == 0  # it has a read horizon, as every SDK participant
    unbound = await http.post(f"{base}/Participants/{gmms['sid']}", data={"MessagingBinding.ProjectedAddress": ""})
    assert unbound.json()["messaging_binding"] is None
    nobody = await http.post(f"{base}/Participants", data={"MessagingBinding.ProjectedAddress": "+15017122662"})
    assert nobody.status_code == 400
    bad = await http.post(f"{base}/Participants", data={"Identity": "x", "MessagingBinding.ProjectedAddress": "12"})
    assert (bad.status_code, bad.json()["code"]) == (400, 21211)


async def test_store_helpers_create_group_mms_participants_and_remove_participants():
    state = EmulatorState(fast_config(simulate=False))
    store = state.store
    conversation = store.create_conversation()
    agent = store.create_participant(conversation.sid, identity="agent")
    gmms = store.create_participant(conversation.sid, identity="g", projected_address="+15017122662")
    sms = store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15017122661")
    assert (gmms.channel, sms.channel, agent.channel) == ("chat", "sms", "chat")
    _, first = store.create_message(conversation.sid, author="agent", body="1")
    assert [r.participant_sid for r in first] == [sms.sid]
    store.remove_participant(sms)
    _, second = store.create_message(conversation.sid, author="agent", body="2")
    assert second == [] and store.receipts_of(first[0].message_sid) == first
    assert store.removed_participants[conversation.sid] == {sms.sid: sms}
    await state.aclose()
