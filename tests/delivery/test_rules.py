"""Exhaustive checks of the pure delivery rules: status order, channels, recipients, the ticks rule, the
error table, unread counts.

Never touches GraphQL or upstream: these are the rules the schema descriptions promise.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from delivery_gateway.delivery.channels import Channel, participant_channel, receipt_channel
from delivery_gateway.delivery.error_codes import describe_error_code, error_codes
from delivery_gateway.delivery.recipients import RecipientSource, RecipientState, RecipientStatus, recipient_states
from delivery_gateway.delivery.statuses import is_final, is_terminal, rank, receipts_final
from delivery_gateway.delivery.ticks import Ticks, ticks_for
from delivery_gateway.delivery.unread import horizon_replaces, unread_counts
from delivery_gateway.kernel.records import DeliveryStatus as S
from delivery_gateway.kernel.records import MessageRecord, ParticipantRecord, ReceiptRecord

CONV = "CH" + "0" * 32


def chat(name: str, read: int | None = None) -> ParticipantRecord:
    return ParticipantRecord(sid=f"MB{name}", conversation_sid=CONV, identity=name, last_read_message_index=read)


def bound(name: str, kind: str) -> ParticipantRecord:
    return ParticipantRecord(
        sid=f"MB{name}", conversation_sid=CONV, messaging_binding={"type": kind, "address": f"+1{name}"}
    )


def message(author: ParticipantRecord, index: int = 5) -> MessageRecord:
    return MessageRecord(
        sid="IM1", conversation_sid=CONV, index=index, author=author.identity, participant_sid=author.sid
    )


def receipt(p: ParticipantRecord, status: S | None, code: int | None = None, sid: str = "DY1") -> ReceiptRecord:
    return ReceiptRecord(
        sid=sid,
        conversation_sid=CONV,
        message_sid="IM1",
        participant_sid=p.sid,
        status=status,
        error_code=code,
        channel_message_sid="SMx",
    )


def state(status: RecipientStatus) -> RecipientState:
    return RecipientState(chat("x"), Channel.CHAT, status, RecipientSource.READ_HORIZON)


def test_channels():
    assert participant_channel(chat("a")) is Channel.CHAT
    assert participant_channel(bound("b", "sms")) is Channel.SMS
    assert participant_channel(bound("c", "whatsapp")) is Channel.WHATSAPP
    assert participant_channel(bound("d", "messenger")) is Channel.OTHER
    assert participant_channel(ParticipantRecord(sid="MBz", conversation_sid=CONV)) is Channel.OTHER
    r = receipt(bound("b", "sms"), S.SENT)
    assert receipt_channel(r, bound("w", "whatsapp")) is Channel.WHATSAPP
    assert receipt_channel(r, None) is Channel.SMS
    assert (
        receipt_channel(
            ReceiptRecord(sid="DY", conversation_sid=CONV, message_sid="IM", channel_message_sid="WAxx"), None
        )
        is Channel.WHATSAPP
    )
    assert receipt_channel(ReceiptRecord(sid="DY", conversation_sid=CONV, message_sid="IM"), None) is Channel.OTHER


def test_recipients_exclude_author_and_cover_every_channel():
    alice, bob, sms, wa = chat("alice"), chat("bob", read=5), bound("s", "sms"), bound("w", "whatsapp")
    states = recipient_states(message(alice), [alice, bob, sms, wa], [receipt(sms, S.DELIVERED)])
    by = {s.participant.sid: s for s in states}
    assert set(by) == {bob.sid, sms.sid, wa.sid}
    assert by[bob.sid].status is RecipientStatus.READ and by[bob.sid].source is RecipientSource.READ_HORIZON
    assert by[sms.sid].status is RecipientStatus.DELIVERED and by[sms.sid].source is RecipientSource.RECEIPT
    assert by[wa.sid].status is RecipientStatus.PENDING and by[wa.sid].source is RecipientSource.NONE


def test_author_matched_by_identity_or_address_without_participant_sid():
    sms = bound("s", "sms")
    msg = MessageRecord(sid="IM1", conversation_sid=CONV, index=0, author="+1s")
    assert recipient_states(msg, [sms, chat("a")], [])[0].participant.identity == "a"


@pytest.mark.parametrize(("read", "expected"), [(None, "delivered"), (4, "delivered"), (5, "read"), (9, "read")])
def test_chat_read_horizon(read, expected):
    alice, bob = chat("alice"), chat("bob", read=read)
    [only] = recipient_states(message(alice, index=5), [alice, bob], [])
    assert only.status.value == expected


def test_sms_never_beyond_delivered_but_whatsapp_reads():
    alice, sms, wa = chat("alice"), bound("s", "sms"), bound("w", "whatsapp")
    states = recipient_states(
        message(alice), [alice, sms, wa], [receipt(sms, S.READ, sid="DY1"), receipt(wa, S.READ, sid="DY2")]
    )
    assert [s.status for s in states] == [RecipientStatus.DELIVERED, RecipientStatus.READ]
    assert ticks_for(states) is Ticks.DELIVERED


def test_latest_receipt_per_participant_wins():
    alice, sms = chat("alice"), bound("s", "sms")
    states = recipient_states(
        message(alice),
        [alice, sms],
        [receipt(sms, S.SENT, sid="DY1"), receipt(sms, S.UNDELIVERED, 30005, sid="DY2")],
    )
    assert states[0].status is RecipientStatus.UNDELIVERED and states[0].error_code == 30005


ORDER = [RecipientStatus.PENDING, RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ]


@pytest.mark.parametrize("combo", list(itertools.product(list(RecipientStatus), repeat=3)))
def test_ticks_rule_exhaustive_for_three_recipients(combo):
    ticks = ticks_for([state(s) for s in combo])
    if any(s in (RecipientStatus.FAILED, RecipientStatus.UNDELIVERED) for s in combo):
        assert ticks is Ticks.FAILED  # a partial failure is never hidden behind the others' success
    else:
        assert ticks.value == min(combo, key=ORDER.index).value


def test_ticks_edge_cases():
    assert ticks_for([]) is Ticks.SENT
    assert ticks_for([state(RecipientStatus.READ)] * 4 + [state(RecipientStatus.FAILED)]) is Ticks.FAILED
    assert ticks_for([state(RecipientStatus.READ), state(RecipientStatus.DELIVERED)]) is Ticks.DELIVERED


def test_mixed_group_read_only_when_everyone_read():
    alice, bob, wa = chat("alice"), chat("bob", read=5), bound("w", "whatsapp")
    msg = message(alice)
    assert ticks_for(recipient_states(msg, [alice, bob, wa], [receipt(wa, S.DELIVERED)])) is Ticks.DELIVERED
    assert ticks_for(recipient_states(msg, [alice, bob, wa], [receipt(wa, S.READ)])) is Ticks.READ
    assert ticks_for(recipient_states(msg, [alice, chat("carol"), wa], [receipt(wa, S.READ)])) is Ticks.DELIVERED
    assert ticks_for(recipient_states(msg, [alice, bob, wa], [])) is Ticks.PENDING
    assert ticks_for(recipient_states(msg, [alice, bob, wa], [receipt(wa, S.SENT)])) is Ticks.SENT
    assert ticks_for(recipient_states(msg, [alice, bob, wa], [receipt(wa, S.FAILED, 63016)])) is Ticks.FAILED


def test_status_order_terminal_and_final():
    ranks = [rank(s) for s in (None, S.QUEUED, S.SENT, S.DELIVERED, S.READ, S.UNDELIVERED, S.FAILED)]
    assert ranks == [0, 1, 2, 3, 4, 5, 5]
    assert [s for s in S if is_terminal(s)] == [S.FAILED, S.UNDELIVERED]
    assert [s for s in S if is_final(s)] == [S.READ, S.FAILED, S.UNDELIVERED]
    assert not is_final(None) and not is_terminal(None)


def test_receipts_final():
    p = bound("s", "sms")
    assert receipts_final([receipt(p, S.READ), receipt(p, S.FAILED)])
    assert not receipts_final([receipt(p, S.READ), receipt(p, S.DELIVERED)])
    assert not receipts_final([])


def test_unread_counts_count_messages_after_the_horizon_not_index_differences():
    alice, bob, carol, sms = chat("alice", read=None), chat("bob", read=10), chat("carol", read=2), bound("s", "sms")
    indices = [3, 5, 9, 11, 14]  # indices skip numbers once messages are removed
    got = {u.participant.sid: (u.count, u.at_least) for u in unread_counts([alice, bob, carol, sms], indices, True)}
    assert got == {alice.sid: (None, False), bob.sid: (2, False), carol.sid: (5, True)}
    assert [u.count for u in unread_counts([carol], indices, False)] == [5]  # the whole conversation: exact
    assert [(u.count, u.at_least) for u in unread_counts([bob], [], False)] == [(0, False)]


def test_the_latest_horizon_report_wins_back_or_forward():
    t1, t2 = "2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"
    assert horizon_replaces(None, 3, t1)
    assert horizon_replaces((5, t1), 2, t2)  # marked unread
    assert not horizon_replaces((2, t2), 5, t1)  # a late, older report
    assert horizon_replaces((2, None), 5, None) and not horizon_replaces((5, None), 2, t2)
    assert horizon_replaces((2, t1), 5, t1) and not horizon_replaces((5, t1), 2, t1)  # same millisecond: forward


REQUIRED_CODES = [
    30001,
    30002,
    30003,
    30004,
    30005,
    30006,
    30007,
    30008,
    30009,
    30010,
    30017,
    30022,
    30023,
    30024,
    30032,
    30034,
    21610,
    21612,
    21614,
    63003,
    63013,
    63016,
    63018,
    63024,
    63032,
]


def test_error_table_covers_required_codes():
    table = error_codes()
    assert set(REQUIRED_CODES) <= set(table)
    assert table[30003].name == "Unreachable destination handset"
    assert table[30007].name == "Message filtered"
    assert table[63016].retryable is False and table[30001].retryable is True
    assert describe_error_code(None) is None and describe_error_code(0) is None
    assert describe_error_code(12345).name == "Twilio error 12345"


def test_group_mms_participants_are_chat_participants():
    gmms = ParticipantRecord(
        sid="MBg", conversation_sid=CONV, identity="g", messaging_binding={"type": "sms", "projected_address": "+1"}
    )
    assert participant_channel(gmms) is Channel.CHAT


def test_recipients_are_who_was_present_plus_who_holds_a_receipt():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    author, sms = chat("author"), bound("sms", "sms")
    late = dataclasses.replace(bound("late", "sms"), date_created=at + timedelta(seconds=1))
    early_chat = dataclasses.replace(chat("early"), date_created=at)
    msg = dataclasses.replace(message(author), date_created=at)
    gone = receipt(bound("gone", "whatsapp"), S.FAILED, 63016, sid="DY2")
    gone = dataclasses.replace(gone, channel_message_sid="WAx")
    states = recipient_states(msg, [author, sms, late, early_chat], [receipt(sms, S.SENT), gone])
    assert [(s.participant.sid, s.status, s.removed) for s in states] == [
        (sms.sid, RecipientStatus.SENT, False),
        (early_chat.sid, RecipientStatus.DELIVERED, False),
        ("MBgone", RecipientStatus.FAILED, True),
    ]
    assert states[-1].channel is Channel.WHATSAPP and states[-1].error_code == 63016
    # A late joiner who does hold a receipt (Twilio sent it after all) is a recipient.
    assert late.sid in {s.participant.sid for s in recipient_states(msg, [late], [receipt(late, S.SENT)])}


@pytest.mark.parametrize("status", [None, S.QUEUED])
def test_a_receipt_without_a_delivery_status_leaves_its_recipient_pending(status):
    sms = bound("s", "sms")
    [only] = recipient_states(message(chat("a")), [sms], [receipt(sms, status)])
    assert (only.status, only.source) == (RecipientStatus.PENDING, RecipientSource.RECEIPT)


def test_unknown_statuses_parse_to_none_and_are_kept_as_reported(caplog):
    record = ReceiptRecord.from_dict({"sid": "DY1", "conversation_sid": CONV, "message_sid": "IM1", "status": "x-new"})
    assert (record.status, record.reported_status) == (None, "x-new")
    assert ReceiptRecord.from_dict(record.to_dict()) == record
    assert S.parse("queued") is S.QUEUED and S.parse(None) is None and S.parse("") is None
