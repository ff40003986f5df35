"""The demo's live traffic creates messages whose receipts the simulator then moves and announces."""

from __future__ import annotations

from delivery_gateway.emulator import create_emulator_app
from delivery_gateway.emulator.models import CHAT
from delivery_gateway.emulator.traffic import LiveTraffic

from .conftest import fast_config


async def test_live_traffic_writes_as_a_chat_agent_to_conversations_with_external_recipients():
    state = create_emulator_app(fast_config(seed_data=True, simulate=False)).state.emulator
    traffic = LiveTraffic(state, interval=0.01, seed=3)
    try:
        for _ in range(5):
            sid = traffic.send_one()
            assert sid is not None
            message = next(m for msgs in state.store.messages.values() for m in msgs.values() if m.sid == sid)
            members = state.store.participants[message.conversation_sid]
            author = next(p for p in members.values() if p.sid == message.participant_sid)
            assert author.channel == CHAT
            receipts = state.store.receipts_of(sid)
            assert receipts and len(receipts) == sum(1 for p in members.values() if p.channel != CHAT)
        assert state.simulator.pending_steps > 0
        assert await state.simulator.advance_all() > 0
        assert all(r.status for r in state.store.receipts_of(sid))
    finally:
        await state.aclose()
