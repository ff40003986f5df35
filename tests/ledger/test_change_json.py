"""A change's JSON (what pub/sub carries) is `compact_json` of its fields, around the payload's one encoding."""

from __future__ import annotations

import json

from delivery_gateway.kernel.records import compact_json
from delivery_gateway.ledger.events import ChangeKind, LedgerChange
from delivery_gateway.ledger.rows import change_row


def test_to_json_is_compact_json_of_the_change():
    payload = {"a": "é", "b": [1, 2.5, None], "c": {"d": True, "e": 'q"\\\u2028'}}
    change = LedgerChange(12, ChangeKind.DELIVERY, 'CH"\u00e9', payload)
    expected = compact_json({"seq": 12, "kind": "delivery", "conversation_sid": 'CH"\u00e9', "payload": payload})
    assert change.to_json() == expected
    assert LedgerChange.from_json(change.to_json()) == change


def test_the_change_log_row_and_publishing_share_one_encoding():
    change = LedgerChange(3, ChangeKind.READ_HORIZON, "CH1", {"participant_sid": "MB1", "index": 4})
    row = change_row(change, 0.0)
    assert row["payload"] == compact_json(change.payload)
    assert json.loads(change.to_json())["payload"] == change.payload
    assert change.payload_json is row["payload"]  # encoded once
    assert change == LedgerChange(3, ChangeKind.READ_HORIZON, "CH1", dict(change.payload))  # not part of equality
