"""Cache key names (both scopes, invalidation sets) and TTL policy.

Never performs I/O.
"""

from __future__ import annotations

from delivery_gateway.cache import TtlPolicy
from delivery_gateway.cache import keys as k
from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.kernel.settings import Settings

CONV = "CH" + "1" * 32
MSG = "IM" + "2" * 32
SERVICE = "IS" + "3" * 32


def test_scope_enters_every_key():
    assert k.conversation(None, CONV) == f"conversation:default:{CONV}"
    assert k.conversation(SERVICE, CONV) == f"conversation:{SERVICE}:{CONV}"
    assert k.message(SERVICE, CONV, MSG) == f"message:{SERVICE}:{CONV}:{MSG}"
    assert k.participants(None, CONV) == f"participants:default:{CONV}"
    assert k.receipts(None, CONV, MSG) == f"receipts:default:{CONV}:{MSG}"
    assert k.messages_page(None, CONV, "desc", 20, None, None) == f"messages_page:default:{CONV}:0:desc:20:-"
    assert k.messages_page(SERVICE, CONV, "asc", 5, "PT9", "ab12") == f"messages_page:{SERVICE}:{CONV}:ab12:asc:5:PT9"


def test_kind_of_every_key_is_a_known_kind():
    all_keys = [
        k.conversation(None, CONV),
        k.message(None, CONV, MSG),
        k.participants(None, CONV),
        k.receipts(None, CONV, MSG),
        k.messages_page(None, CONV, "desc", 1, None, None),
        k.messages_generation(None, CONV),
        k.configuration(),
    ]
    assert [k.kind_of(key) for key in all_keys] == [
        k.CONVERSATION,
        k.MESSAGE,
        k.PARTICIPANTS,
        k.RECEIPTS,
        k.MESSAGES_PAGE,
        k.MESSAGES_GENERATION,
        k.CONFIGURATION,
    ]
    assert set(map(k.kind_of, all_keys)) == set(k.KINDS)


def test_invalidation_covers_both_scopes():
    assert k.invalidation_keys_message(SERVICE, CONV, MSG) == [
        k.message(SERVICE, CONV, MSG),
        k.receipts(SERVICE, CONV, MSG),
        k.message(None, CONV, MSG),
        k.receipts(None, CONV, MSG),
    ]
    assert k.invalidation_keys_message(None, CONV, MSG) == [
        k.message(None, CONV, MSG),
        k.receipts(None, CONV, MSG),
    ]
    assert k.invalidation_keys_conversation(SERVICE, CONV) == [
        k.conversation(SERVICE, CONV),
        k.conversation(None, CONV),
    ]
    assert k.invalidation_keys_participants(SERVICE, CONV) == [
        k.participants(SERVICE, CONV),
        k.participants(None, CONV),
    ]
    assert k.generation_keys(SERVICE, CONV) == [
        k.messages_generation(SERVICE, CONV),
        k.messages_generation(None, CONV),
    ]


def receipt(status: DeliveryStatus | None) -> ReceiptRecord:
    return ReceiptRecord(sid="DY1", conversation_sid=CONV, message_sid=MSG, status=status)


def test_ttl_policy_from_settings_and_final_receipts():
    policy = TtlPolicy.from_settings(Settings(_env_file=None, ttl_receipts=7, ttl_receipts_terminal=700))
    assert policy.for_receipts([receipt(DeliveryStatus.READ), receipt(DeliveryStatus.FAILED)]) == 700
    assert policy.for_receipts([receipt(DeliveryStatus.UNDELIVERED)]) == 700
    assert policy.for_receipts([receipt(DeliveryStatus.READ), receipt(DeliveryStatus.DELIVERED)]) == 7
    assert policy.for_receipts([receipt(None)]) == 7
    assert policy.for_receipts([]) == 7
    assert policy.for_kind(k.CONVERSATION) == 60 and policy.for_kind(k.MESSAGES_PAGE) == policy.messages
