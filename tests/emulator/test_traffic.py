"""The demo's live traffic: messages whose receipts the simulator moves, read horizons that move both ways
(announced with onParticipantUpdated), and participants who join late (receipts only from then on)."""

from __future__ import annotations

from delivery_gateway.emulator import create_emulator_app
from delivery_gateway.emulator.models import CHAT
from delivery_gateway.emulator.traffic import LiveTraffic

from .conftest import fast_config


def demo_state():
    return create_emulator_app(fast_config(seed_data=True, simulate=False)).state.emulator


async def test_live_traffic_writes_as_a_chat_agent_to_conversations_with_external_recipients():
    state = demo_state()
    traffic = LiveTraffic(state, interval=0.01, seed=3)
    try:
        for _ in range(5):
            sid = traffic.send_one()
            assert sid is not None
            message = next(m for msgs in state.store.messages.values() for m in msgs.values() if m.sid == sid)
            members = state.store.participants[message.conversation_sid]
            author = next(p for p in members.values() if p.sid == message.participant_sid)
            assert author.channel == CHAT and author.binding is None
            receipts = state.store.receipts_of(sid)
            assert receipts and len(receipts) == sum(1 for p in members.values() if p.channel != CHAT)
        assert state.simulator.pending_steps > 0
        assert await state.simulator.advance_all() > 0
        assert all(r.status for r in state.store.receipts_of(sid))
    finally:
        await state.aclose()


async def test_live_traffic_moves_read_horizons_both_ways_and_announces_them():
    state = demo_state()
    emitted: list[tuple[str, dict]] = []
    state.webhooks.emit = lambda service, event, params: emitted.append((event, params)) or True
    traffic = LiveTraffic(state, seed=5, read_rate=1.0, unread_rate=0.4, late_join_rate=0.0)
    moves: list[tuple[int | None, int | None]] = []
    try:
        for _ in range(60):
            before = {
                p.sid: p.last_read_message_index for per in state.store.participants.values() for p in per.values()
            }
            moved = traffic.move_horizon()
            if moved is not None:
                moves.append((before[moved.sid], moved.last_read_message_index))
    finally:
        await state.aclose()
    assert traffic.horizons_moved == len(moves) > 10
    assert any(old is not None and new < old for old, new in moves), "some moves mark messages unread"
    assert any(old is None or new > old for old, new in moves)
    updates = [params for event, params in emitted if event == "onParticipantUpdated"]
    assert len(updates) == len(moves)
    assert all(p["Source"] == "SDK" and p["ClientIdentity"] == p["Identity"] for p in updates)
    assert all("LastReadMessageIndex" in p for p in updates)


async def test_live_traffic_lets_participants_join_late():
    state = demo_state()
    store = state.store
    traffic = LiveTraffic(state, seed=9, read_rate=0.0, late_join_rate=1.0, max_late_joiners=1)
    try:
        joined = [traffic.join_late() for _ in range(20)]
        late = [p for p in joined if p is not None]
        assert late and traffic.joined == len(late)
        per_conversation = {p.conversation_sid for p in late}
        assert len(per_conversation) == len(late)  # at most one per conversation
        for participant in late:
            older = store.messages[participant.conversation_sid].values()
            assert not any(r.participant_sid == participant.sid for m in older for r in store.receipts_of(m.sid))
            agent = next(p.identity for p in store.participants[participant.conversation_sid].values() if p.identity)
            _, receipts = store.create_message(participant.conversation_sid, author=agent, body="welcome")
            assert participant.sid in {r.participant_sid for r in receipts}
        for _ in range(3):
            traffic.tick()
        assert traffic.sent == 3
    finally:
        await state.aclose()
