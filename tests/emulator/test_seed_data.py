"""The demo seed: enough conversations, channels, history and delivery states for the `demo` command.

Checks the seeded store directly; no HTTP.
"""

from __future__ import annotations

from delivery_gateway.emulator import EmulatorState
from delivery_gateway.emulator.delivery import delivery_summary
from delivery_gateway.sids import is_sid
from tests.emulator.conftest import fast_config


def test_seed_covers_every_channel_state_and_scope():
    state = EmulatorState(fast_config(seed_data=True))
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
    chat = [p for per in store.participants.values() for p in per.values() if p.channel == "chat"]
    assert all(p.last_read_message_index is not None and p.last_read_timestamp for p in chat)
    summaries = [delivery_summary(store.receipts_of(m.sid)) for per in store.messages.values() for m in per.values()]
    assert None in summaries  # the chat-only room
    assert {"all", "some", "none"} <= {s["delivered"] for s in summaries if s}
    assert state.simulator.pending_steps == 0 and state.webhooks.pending == 0
