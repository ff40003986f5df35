"""Messages as Twilio numbers them: deleting one (the spec's DeleteConversationMessage) leaves a gap, later
messages keep their index and new ones never reuse it. Both URL scopes, in-process ASGI client.
"""

from __future__ import annotations

import httpx
import pytest

from delivery_gateway.emulator import create_emulator_app
from tests.emulator.conftest import fast_config


@pytest.mark.parametrize("scope", ["account", "service"])
async def test_deleting_a_message_leaves_its_index_unused(scope):
    app = create_emulator_app(fast_config(simulate=False))
    state = app.state.emulator
    auth = (state.config.account_sid, state.config.auth_token)
    emitted: list[tuple[str, dict]] = []
    state.webhooks.emit = lambda service, event, params: emitted.append((event, params)) or True
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e", auth=auth) as http:
        root = "/v1" if scope == "account" else f"/v1/Services/{state.store.create_service('EU').sid}"
        sid = (await http.post(f"{root}/Conversations", data={})).json()["sid"]
        await http.post(
            f"{root}/Conversations/{sid}/Participants",
            data={"MessagingBinding.Address": "+15550000001", "MessagingBinding.ProxyAddress": "+15017122661"},
        )
        base = f"{root}/Conversations/{sid}/Messages"
        sent = [(await http.post(base, data={"Body": f"m{n}"})).json() for n in range(3)]
        middle, last = sent[1], sent[2]
        deleted = await http.delete(f"{base}/{middle['sid']}", headers={"X-Twilio-Webhook-Enabled": "true"})
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert (await http.get(f"{base}/{middle['sid']}")).status_code == 404
        assert (await http.get(f"{base}/{middle['sid']}/Receipts")).status_code == 404
        assert (await http.delete(f"{base}/{middle['sid']}")).status_code == 404
        assert (await http.get(f"{base}/{last['sid']}")).json()["index"] == 2  # a later message keeps its index
        newest = (await http.post(base, data={"Body": "after"})).json()
        assert newest["index"] == 3
        listed = (await http.get(base)).json()["messages"]
        assert [m["index"] for m in listed] == [0, 2, 3]
    removed = [params for event, params in emitted if event == "onMessageRemoved"]
    assert len(removed) == 1 and removed[0]["MessageSid"] == middle["sid"] and removed[0]["Index"] == "1"
    assert "DateRemoved" in removed[0]
    await state.aclose()


async def test_pending_steps_of_a_deleted_message_fire_nothing():
    app = create_emulator_app(fast_config(simulate=False, failure_rate=0))
    state = app.state.emulator
    store = state.store
    conversation = store.create_conversation()
    store.create_participant(conversation.sid, identity="agent")
    store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15017122661")
    emitted: list[str] = []
    state.webhooks.emit = lambda service, event, params: emitted.append(event) or True
    message, [receipt] = store.create_message(conversation.sid, author="agent", body="gone soon")
    store.delete_message(message)
    emitted.clear()
    await state.simulator.advance_all()
    assert emitted == [] and receipt.status == "sent"
    await state.aclose()
