"""How ledger records become table rows: the columns queries filter and group on, derived in one place.

Pure functions, no I/O: the SQL ledger writes with them and the first migration imports old data with them, so
a row never depends on which path wrote it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from delivery_gateway.delivery.channels import receipt_channel
from delivery_gateway.delivery.statuses import is_terminal
from delivery_gateway.kernel.records import DeliveryStatus, ReceiptRecord
from delivery_gateway.ledger.events import ChangeKind, HistoryEntry, LedgerChange

HOUR = 3600
DAY = 86400


def epoch_of(value: str | datetime | None, fallback: float) -> int:
    """Whole epoch seconds of an ISO-8601 time (Twilio's DateUpdated); `fallback` when absent or unreadable."""
    if value is None or value == "":
        return int(fallback)
    if isinstance(value, datetime):
        moment = value
    else:
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return int(fallback)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def hour_of(epoch: int) -> int:
    """Start of the UTC hour holding `epoch`."""
    return epoch - epoch % HOUR


def channel_of(record: ReceiptRecord) -> str:
    """The receipt's channel as reports group it (sms, whatsapp, other): the channel message SID's kind."""
    return receipt_channel(record, None).value


def receipt_row(record: ReceiptRecord, now: float) -> dict[str, Any]:
    # When Twilio says the receipt reached its status: DateUpdated, else DateCreated (Twilio leaves DateUpdated
    # null until a receipt is updated, so one created failed has been failed since it was created).
    updated = epoch_of(record.date_updated or record.date_created, now)
    status = record.status.value if record.status is not None else None
    return {
        "sid": record.sid,
        "conversation_sid": record.conversation_sid,
        "message_sid": record.message_sid,
        "service_sid": record.chat_service_sid,
        "participant_sid": record.participant_sid,
        "channel": channel_of(record),
        "status": status,
        "error_code": record.error_code,
        "updated_epoch": updated,
        "failed_at": updated if is_terminal(record.status) else None,
        "record": record.to_json(),
    }


def history_row(record: ReceiptRecord, entry: HistoryEntry, ts: float) -> dict[str, Any]:
    """One status `record`'s receipt took; `record` supplies the service and channel it is reported under."""
    return {
        "receipt_sid": record.sid,
        "status": entry.status.value,
        "error_code": entry.error_code,
        "at": entry.at,
        "source": entry.source,
        "recorded_seq": entry.recorded_seq,
        "ts": ts,
        "service_sid": record.chat_service_sid,
        "channel": channel_of(record),
        "at_epoch": epoch_of(entry.at, ts),
    }


def history_entry(row: Any) -> HistoryEntry:
    """A `ledger_history` row (status, error_code, at, source, recorded_seq) as a HistoryEntry."""
    return HistoryEntry(
        status=DeliveryStatus(row.status),
        error_code=row.error_code,
        at=row.at,
        source=row.source,
        recorded_seq=int(row.recorded_seq),
    )


def report_key(history: dict[str, Any]) -> tuple[str, int, str, int, str] | None:
    """The `ledger_report_hours` row a history row counts in; None when it belongs to no service."""
    if history["service_sid"] is None:
        return None
    return (
        history["service_sid"],
        hour_of(history["at_epoch"]),
        history["status"],
        history["error_code"] or 0,
        history["channel"],
    )


def change_row(change: LedgerChange, ts: float) -> dict[str, Any]:
    payload = change.payload
    status = None
    if change.kind is ChangeKind.DELIVERY:
        status = (payload.get("receipt") or {}).get("status")
    return {
        "seq": change.seq,
        "kind": change.kind.value,
        "conversation_sid": change.conversation_sid,
        "service_sid": payload.get("service_sid"),
        "status": status,
        "payload": change.payload_json,  # encoded once: publishing the change reuses it
        "ts": ts,
    }


def change_from_row(row: Any) -> LedgerChange:
    """A `ledger_changes` row (seq, kind, conversation_sid, payload) as a LedgerChange."""
    return change_from_values(row.seq, row.kind, row.conversation_sid, row.payload)


def change_from_values(seq: Any, kind: str, conversation_sid: str, payload: str) -> LedgerChange:
    """A LedgerChange from a `ledger_changes` row's seq, kind, conversation_sid and payload (its JSON text)."""
    return LedgerChange(int(seq), ChangeKind(kind), conversation_sid, json.loads(payload))
