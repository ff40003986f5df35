"""In-process delivery ledger (`memory://`): for tests and throwaway demos.

Never durable and never shared between processes: a restart forgets everything it held.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.ledger.base import SyncLedgerCore, sort_history
from delivery_gateway.ledger.events import (
    ApplyResult,
    ChangeKind,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    PruneResult,
)


class MemoryLedger(SyncLedgerCore):
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # epoch seconds stamped on what `prune` ages out (tests inject one)
        self._inbox: dict[int, str] = {}
        self._inbox_ids = itertools.count(1)
        self._seen_keys: dict[str, tuple[int, float]] = {}  # key -> (seq, recorded at)
        self._receipts: dict[str, ReceiptRecord] = {}
        self._by_message: dict[str, set[str]] = defaultdict(set)
        self._histories: dict[str, list[tuple[float, HistoryEntry]]] = defaultdict(list)
        self._changes: dict[int, tuple[float, LedgerChange]] = {}  # insertion order is seq order
        self._seq = 0
        self._pruned_through = 0
        self._by_conversation: dict[str, list[LedgerChange]] = defaultdict(list)
        self._horizons: dict[str, int] = {}
        self._resends: dict[str, str] = {}  # new -> old

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # primitives
    def _seen(self, key: str) -> int | None:
        found = self._seen_keys.get(key)
        return None if found is None else found[0]

    def _mark_seen(self, key: str, seq: int) -> None:
        self._seen_keys[key] = (seq, self.clock())

    def _get_receipt(self, sid: str) -> ReceiptRecord | None:
        return self._receipts.get(sid)

    def _put_receipt(self, record: ReceiptRecord) -> None:
        self._receipts[record.sid] = record
        self._by_message[record.message_sid].add(record.sid)

    def _add_history(self, receipt_sid: str, entry: HistoryEntry) -> None:
        self._histories[receipt_sid].append((self.clock(), entry))

    def _append_change(self, kind: ChangeKind, conversation_sid: str, payload: dict) -> LedgerChange:
        self._seq += 1
        change = LedgerChange(self._seq, kind, conversation_sid, payload)
        self._changes[change.seq] = (self.clock(), change)
        self._by_conversation[conversation_sid].append(change)
        return change

    def _get_change(self, seq: int) -> LedgerChange | None:
        found = self._changes.get(seq)
        return None if found is None else found[1]

    def _get_horizon(self, participant_sid: str) -> int | None:
        return self._horizons.get(participant_sid)

    def _put_horizon(self, participant_sid: str, index: int) -> None:
        self._horizons[participant_sid] = index

    # async contract
    async def inbox_add(self, body: str) -> int:
        entry_id = next(self._inbox_ids)
        self._inbox[entry_id] = body
        return entry_id

    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]:
        return sorted(self._inbox.items())[:limit]

    async def inbox_done(self, entry_id: int) -> None:
        self._inbox.pop(entry_id, None)

    async def apply(self, event: LedgerEvent) -> ApplyResult:
        return self.apply_sync(event)

    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]:
        return [c for c in self._by_conversation.get(conversation_sid, ()) if c.seq > after_seq][:limit]

    async def last_seq(self) -> int:
        return self._seq

    async def receipt(self, sid: str) -> ReceiptRecord | None:
        return self._receipts.get(sid)

    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]:
        return [self._receipts[s] for s in sorted(self._by_message.get(message_sid, ()))]

    async def history(self, receipt_sid: str) -> list[HistoryEntry]:
        return (await self.history_many([receipt_sid]))[receipt_sid]

    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]:
        return {sid: sort_history(e for _, e in self._histories.get(sid, ())) for sid in receipt_sids}

    async def read_horizon(self, participant_sid: str) -> int | None:
        return self._horizons.get(participant_sid)

    async def record_resend(self, conversation_sid: str, old_sid: str, new_sid: str) -> None:
        self._resends[new_sid] = old_sid

    async def resent_as(self, old_sid: str) -> list[str]:
        return [new for new, old in self._resends.items() if old == old_sid]

    async def resend_of(self, new_sid: str) -> str | None:
        return self._resends.get(new_sid)

    # retention
    async def prune(self, before: datetime) -> PruneResult:
        cutoff = before.timestamp()
        changes = 0
        for seq, (at, _change) in list(self._changes.items()):
            if at >= cutoff:  # the log is pruned as a prefix in sequence order
                break
            del self._changes[seq]
            self._pruned_through = seq
            changes += 1
        if changes:
            for conv, items in list(self._by_conversation.items()):
                kept = [c for c in items if c.seq > self._pruned_through]
                if kept:
                    self._by_conversation[conv] = kept
                else:
                    del self._by_conversation[conv]
        old_keys = [k for k, (_, at) in self._seen_keys.items() if at < cutoff]
        for key in old_keys:
            del self._seen_keys[key]
        history = 0
        for sid, entries in list(self._histories.items()):
            kept_entries = [(at, e) for at, e in entries if at >= cutoff]
            history += len(entries) - len(kept_entries)
            if kept_entries:
                self._histories[sid] = kept_entries
            else:
                del self._histories[sid]
        return PruneResult(changes, len(old_keys), history, self._pruned_through)

    async def pruned_through(self) -> int:
        return self._pruned_through
