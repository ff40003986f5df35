"""Delivery rules and the simulator: receipts per recipient, the all/some/none summary, realistic paths.

Drives the store and simulator in-process; simulator steps take milliseconds or are taken at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from delivery_gateway.emulator import EmulatorState, serve_emulator
from delivery_gateway.emulator.delivery import FAILED_CODES, IMPLIED, UNDELIVERED_CODES, delivery_summary
from tests.emulator.conftest import fast_config


@dataclass
class Reached:
    reached: set[str] = field(default_factory=set)


def receipts(*paths: str) -> list[Reached]:
    """One stub receipt per path, e.g. "sent>delivered>read"."""
    out = []
    for path in paths:
        reached: set[str] = set()
        for status in path.split(">"):
            reached.update(IMPLIED[status])
        out.append(Reached(reached))
    return out


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["sent", "sent"], ("all", "none", "none", "none", "none")),
        (["delivered", "read"], ("all", "all", "some", "none", "none")),
        # Twilio's documented example: 5 receipts, sent all, delivered some, read some.
        (["read", "read", "delivered", "sent", "sent"], ("all", "some", "some", "none", "none")),
        (["failed", "delivered"], ("some", "some", "none", "some", "none")),
        (["sent>failed", "delivered"], ("all", "some", "none", "some", "none")),
        (["undelivered", "undelivered"], ("all", "none", "none", "none", "all")),
        (["read", "failed", "sent>undelivered"], ("some", "some", "some", "some", "some")),
    ],
)
def test_summary_counts_every_status_a_receipt_passed_through(paths, expected):
    summary = delivery_summary(receipts(*paths))
    assert summary == {
        "total": len(paths),
        **dict(zip(["sent", "delivered", "read", "failed", "undelivered"], expected, strict=True)),
    }


def test_no_non_chat_recipient_means_no_summary():
    assert delivery_summary([]) is None


def conversation_with_everyone(state: EmulatorState):
    store = state.store
    conversation = store.create_conversation(friendly_name="mixed")
    agent = store.create_participant(conversation.sid, identity="agent")
    watcher = store.create_participant(conversation.sid, identity="watcher")
    sms = store.create_participant(conversation.sid, address="+15550000001", proxy_address="+15017122661")
    whatsapp = store.create_participant(
        conversation.sid, address="whatsapp:+15550000002", proxy_address="whatsapp:+14155238886"
    )
    return conversation, agent, watcher, sms, whatsapp


async def test_receipts_go_to_non_chat_recipients_other_than_the_author():
    state = EmulatorState(fast_config(simulate=False, failure_rate=0))
    conversation, _agent, _, sms, whatsapp = conversation_with_everyone(state)
    store = state.store
    _, from_agent = store.create_message(conversation.sid, author="agent", body="hi")
    assert {r.participant_sid for r in from_agent} == {sms.sid, whatsapp.sid}
    assert {r.channel_message_sid[:2] for r in from_agent} == {"SM", "WA"}
    assert all(r.status == "sent" and r.error_code is None and r.date_updated is None for r in from_agent)
    _, from_sms = store.create_message(conversation.sid, author="+15550000001", body="hey")
    assert [r.participant_sid for r in from_sms] == [whatsapp.sid]
    chat_only = store.create_conversation()
    store.create_participant(chat_only.sid, identity="a")
    store.create_participant(chat_only.sid, identity="b")
    message, none = store.create_message(chat_only.sid, author="a", body="chat only")
    assert none == [] and delivery_summary(store.receipts_of(message.sid)) is None
    await state.aclose()


async def test_advance_all_takes_happy_paths_to_their_end_and_reads_for_chat():
    config = fast_config(simulate=False, failure_rate=0, whatsapp_read_rate=1, chat_read_rate=1)
    state = EmulatorState(config)
    conversation, agent, watcher, sms, whatsapp = conversation_with_everyone(state)
    message, created = state.store.create_message(conversation.sid, author="agent", body="hi")
    assert state.simulator.pending_steps == 1 + 2 + 1  # sms delivered; whatsapp delivered, read; watcher reads
    await state.simulator.advance_all()
    final = {r.participant_sid: r.status for r in created}
    assert final == {sms.sid: "delivered", whatsapp.sid: "read"}
    assert watcher.last_read_message_index == message.index and watcher.last_read_timestamp is not None
    assert agent.last_read_message_index is None  # the author does not read their own message
    assert delivery_summary(created) == {
        "total": 2,
        "sent": "all",
        "delivered": "all",
        "read": "some",
        "failed": "none",
        "undelivered": "none",
    }
    assert state.simulator.pending_steps == 0
    await state.aclose()


async def test_failures_carry_real_error_codes():
    state = EmulatorState(fast_config(simulate=False, failure_rate=1))
    conversation, *_ = conversation_with_everyone(state)
    created = []
    for n in range(20):
        created += state.store.create_message(conversation.sid, author="agent", body=f"m{n}")[1]
    await state.simulator.advance_all()
    outcomes = {r.status for r in created}
    assert outcomes == {"failed", "undelivered"}
    for receipt in created:
        channel = "whatsapp" if receipt.channel_message_sid.startswith("WA") else "sms"
        codes = FAILED_CODES if receipt.status == "failed" else UNDELIVERED_CODES
        assert receipt.error_code in codes[channel]
        assert ("sent" in receipt.reached) == (receipt.status == "undelivered")
    await state.aclose()


async def test_simulator_runs_on_its_own_in_milliseconds():
    state = EmulatorState(fast_config(failure_rate=0, whatsapp_read_rate=1))
    conversation, *_ = conversation_with_everyone(state)
    _, created = state.store.create_message(conversation.sid, author="agent", body="hi")
    await state.simulator.idle()
    assert sorted(r.status for r in created) == ["delivered", "read"]
    await state.aclose()


async def test_same_seed_same_delivery_paths():
    async def outcomes(seed: int) -> list[tuple[str, int | None]]:
        state = EmulatorState(fast_config(seed=seed, simulate=False, failure_rate=0.4))
        conversation, *_ = conversation_with_everyone(state)
        created = []
        for n in range(15):
            created += state.store.create_message(conversation.sid, author="agent", body=f"m{n}")[1]
        await state.simulator.advance_all()
        await state.aclose()
        return [(r.status, r.error_code) for r in created]

    first = await outcomes(5)
    assert first == await outcomes(5)
    assert first != await outcomes(6)


async def served_receipts(knobs: dict, receiver) -> tuple[list[dict], list[dict], dict]:
    """Create one message to an SMS and a WhatsApp participant under `knobs`, settle it, and return (REST
    receipts, onDeliveryUpdated params in order, the message's REST body)."""
    async with serve_emulator(fast_config(simulate=False, failure_rate=0, whatsapp_read_rate=0, **knobs)) as running:
        state = running.state
        state.set_webhook(post_webhook_url=receiver.url, filters=["onDeliveryUpdated"])
        conversation, *_ = conversation_with_everyone(state)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi")
        await state.simulator.advance_all()
        auth = (state.config.account_sid, state.config.auth_token)
        async with httpx.AsyncClient(base_url=running.base_url, auth=auth) as http:
            base = f"/v1/Conversations/{conversation.sid}/Messages/{message.sid}"
            listed = (await http.get(f"{base}/Receipts")).json()["delivery_receipts"]
            body = (await http.get(base)).json()
    return listed, [w.params for w in receiver.events("onDeliveryUpdated")], body


async def test_receipts_can_start_queued(webhook_receiver):
    listed, posted, body = await served_receipts({"queued_rate": 1.0}, webhook_receiver)
    assert [p["Status"] for p in posted if p["ChannelMessageSid"].startswith("SM")] == ["queued", "sent", "delivered"]
    assert {r["status"] for r in listed} == {"delivered"}
    assert body["delivery"]["delivered"] == "all"


async def test_receipts_can_stay_null(webhook_receiver):
    listed, posted, body = await served_receipts({"null_status_rate": 1.0}, webhook_receiver)
    assert [r["status"] for r in listed] == [None, None]
    assert all(r["date_updated"] is None and r["error_code"] is None for r in listed)
    assert len(posted) == 2 and all("Status" not in p for p in posted)  # null parameters are left out
    assert body["delivery"] == {
        "total": 2, "sent": "none", "delivered": "none", "read": "none", "failed": "none", "undelivered": "none",
    }  # fmt: skip


async def test_receipts_can_take_a_status_no_document_lists(webhook_receiver):
    knobs = {"unknown_status_rate": 1.0, "unknown_status": "partially_delivered"}
    listed, posted, _ = await served_receipts(knobs, webhook_receiver)
    assert posted[0]["Status"] == "partially_delivered" and "DateUpdated" not in posted[0]
    assert {p["Status"] for p in posted} == {"partially_delivered", "sent", "delivered"}
    assert {r["status"] for r in listed} == {"delivered"}


async def test_error_code_is_null_without_error_and_date_updated_null_until_updated(webhook_receiver):
    async with serve_emulator(fast_config(simulate=False, failure_rate=0)) as running:
        state = running.state
        conversation, *_ = conversation_with_everyone(state)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi")
        auth = (state.config.account_sid, state.config.auth_token)
        url = f"/v1/Conversations/{conversation.sid}/Messages/{message.sid}/Receipts"
        async with httpx.AsyncClient(base_url=running.base_url, auth=auth) as http:
            fresh = (await http.get(url)).json()["delivery_receipts"]
            assert all(r["status"] == "sent" and r["error_code"] is None and r["date_updated"] is None for r in fresh)
            await state.simulator.advance_all()
            state.config.error_code_when_none = 0  # the spec's reading of its `default: 0`
            moved = (await http.get(url)).json()["delivery_receipts"]
            assert all(r["error_code"] == 0 and r["date_updated"] is not None for r in moved)
            assert all(r["date_updated"] >= r["date_created"] for r in moved)
