"""The demo seed: enough conversations, channels, history and delivery states for the `demo` command, and the
awkward cases real conversations have (late joiner, removed participant, Group MMS, deleted message, media).

Checks the seeded store directly; no HTTP.
"""

from __future__ import annotations

from delivery_gateway.emulator import EmulatorState
from delivery_gateway.emulator.delivery import delivery_summary
from tests.emulator.conftest import fast_config, is_sid


def seeded() -> EmulatorState:
    return EmulatorState(fast_config(seed_data=True))


def by_name(state: EmulatorState, unique_name: str):
    store = state.store
    return next(c for c in store.conversations.values() if c.unique_name == unique_name)


def test_seed_covers_every_channel_state_and_scope():
    state = seeded()
    store = state.store
    conversations = list(store.conversations.values())
    assert len(conversations) >= 4
    assert max(c.next_index for c in conversations) >= 60
    assert any(c.service_sid != store.default_service.sid for c in conversations)
    channels = {p.channel for per in store.participants.values() for p in per.values()}
    assert channels == {"chat", "sms", "whatsapp"}
    receipts = [r for per in store.receipts.values() for r in per.values()]
    assert {r.status for r in receipts} == {"sent", "delivered", "read", "failed", "undelivered"}
    assert all(r.error_code for r in receipts if r.status in ("failed", "undelivered"))
    assert all(r.error_code is None for r in receipts if r.status not in ("failed", "undelivered"))
    assert all(not r.planned for r in receipts), "seeded receipts are settled"
    assert all(is_sid(r.sid, "DY") and is_sid(r.channel_message_sid) for r in receipts)
    # date_updated is null exactly on receipts that never moved past their first status.
    assert {r.date_updated is None for r in receipts} == {True, False}
    assert all((r.date_updated is None) == (len(r.reached) <= 1) for r in receipts if r.status != "undelivered")
    summaries = [delivery_summary(store.receipts_of(m.sid)) for per in store.messages.values() for m in per.values()]
    assert None in summaries  # the chat-only room
    assert {"all", "some", "none"} <= {s["delivered"] for s in summaries if s}
    assert state.simulator.pending_steps == 0 and state.webhooks.pending == 0


def test_seed_has_a_late_joiner_without_receipts_for_earlier_messages():
    state = seeded()
    store = state.store
    conversation = by_name(state, "order-1042")
    late = store.find_participant_by(conversation.sid, identity=None, address="+15551230006")
    messages = sorted(store.messages[conversation.sid].values(), key=lambda m: m.index)
    before = [m for m in messages if m.date_created < late.date_created]
    after = [m for m in messages if m.date_created >= late.date_created]
    assert before and after
    assert not any(r.participant_sid == late.sid for m in before for r in store.receipts_of(m.sid))
    assert all(
        any(r.participant_sid == late.sid for r in store.receipts_of(m.sid)) for m in after if m.author != late.address
    )


def test_seed_has_a_removed_participant_whose_receipts_remain():
    state = seeded()
    store = state.store
    conversation = by_name(state, "reminders")
    [removed] = store.removed_participants[conversation.sid].values()
    assert removed.address == "+15551230004" and removed.date_removed is not None
    assert removed.sid not in store.participants[conversation.sid]
    kept = [r for m in store.messages[conversation.sid].values() for r in store.receipts_of(m.sid)]
    assert any(r.participant_sid == removed.sid for r in kept)
    later = [m for m in store.messages[conversation.sid].values() if m.date_created >= removed.date_removed]
    assert later and not any(r.participant_sid == removed.sid for m in later for r in store.receipts_of(m.sid))


def test_seed_has_a_group_mms_participant_who_never_read_and_gets_no_receipts():
    state = seeded()
    store = state.store
    conversation = by_name(state, "reminders")
    gmms = store.find_participant_by(conversation.sid, identity="front.desk", address=None)
    assert gmms.channel == "chat" and gmms.binding.to_json() == {"type": "sms", "projected_address": "+15017122662"}
    assert gmms.last_read_message_index is None and gmms.last_read_timestamp is None
    receipts = [r for m in store.messages[conversation.sid].values() for r in store.receipts_of(m.sid)]
    assert receipts and not any(r.participant_sid == gmms.sid for r in receipts)
    readers = [p for per in store.participants.values() for p in per.values() if p.channel == "chat"]
    assert {p.last_read_message_index is None for p in readers} == {True, False}


def test_seed_has_a_deleted_message_and_a_media_message():
    state = seeded()
    store = state.store
    conversation = by_name(state, "order-1042")
    indices = sorted(m.index for m in store.messages[conversation.sid].values())
    assert 30 not in indices and indices == [i for i in range(conversation.next_index) if i != 30]
    [with_media] = [m for m in store.messages[conversation.sid].values() if m.media]
    assert set(with_media.media[0]) == {"sid", "size", "content_type", "filename"}
