"""Redis delivery ledger (`redis://host:port/db?prefix=...`): one ledger shared by every gateway replica.

Never applies an event in more than one round trip: each apply is one atomic Lua script, so sequence
order is commit order across replicas. Durable only as far as Redis persists (enable AOF in production).
The script cannot call Python, so it restates delivery/receipts.py's merge; the SQL ledger replaces this
backend, and with it that second copy of the rule.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from delivery_gateway.delivery.receipts import status_key
from delivery_gateway.kernel.records import ReceiptRecord
from delivery_gateway.kernel.urls import parse_redis_url
from delivery_gateway.ledger.base import sort_history
from delivery_gateway.ledger.events import (
    ApplyResult,
    DeliveryEvent,
    HistoryEntry,
    LedgerChange,
    LedgerEvent,
    MessageEvent,
    PruneResult,
    ReadHorizonEvent,
    event_to_dict,
)

_APPLY = r"""
local p = ARGV[1]
local dedupe = p .. 'seen:' .. ARGV[2]
local kind = ARGV[3]
local conv = ARGV[4]
local event = cjson.decode(ARGV[5])
local ts = ARGV[6]

-- Retention indexes: dedupe keys by time, changes by seq (member carries time), histories by oldest entry.
local function mark_seen(value)
  redis.call('SET', dedupe, value)
  redis.call('ZADD', p .. 'seenidx', ts, ARGV[2])
end

local seen = redis.call('GET', dedupe)
if seen then
  local seq = tonumber(seen)
  if seq > 0 then
    local found = redis.call('ZRANGEBYSCORE', p .. 'changes:' .. conv, seq, seq)
    return {1, found[1] or false, 0}
  end
  return {1, false, 0}
end

-- `payload_json` is spliced in as text: cjson would turn an empty JSON array into {} on the way through.
local function append_json(payload_json)
  local seq = redis.call('INCR', p .. 'seq')
  local text = '{"seq":' .. seq .. ',"kind":' .. cjson.encode(kind) .. ',"conversation_sid":'
    .. cjson.encode(conv) .. ',"payload":' .. payload_json .. '}'
  redis.call('ZADD', p .. 'changes:' .. conv, seq, text)
  redis.call('ZADD', p .. 'changeidx', seq, seq .. ' ' .. ts .. ' ' .. conv)
  return seq, text
end

local function append(payload)
  return append_json(cjson.encode(payload))
end

local function isnull(v) return v == nil or v == cjson.null end

if kind == 'delivery' then
  local rkey = p .. 'receipt:' .. event.receipt_sid
  local rank, at, status = tonumber(ARGV[7]), ARGV[8], ARGV[9]
  local cur = redis.call('HMGET', rkey, 'record', 'rank', 'at', 'status')
  local wins = false
  if not cur[1] then
    wins = true
  else
    local crank = tonumber(cur[2])
    if rank > crank or (rank == crank and (at > cur[3] or (at == cur[3] and status > cur[4]))) then
      wins = true
    end
  end
  -- Mirrors delivery/receipts.py merge_receipt (IDENTITY_FIELDS): the first value learnt of each identity
  -- field is kept, from whichever event brought it; tests/ledger/test_parity.py holds the two together.
  local fields = {'participant_sid', 'account_sid', 'chat_service_sid', 'channel_message_sid', 'date_created'}
  local record = cjson.decode(ARGV[10])
  local prev = false
  local prev_status = cjson.null
  if cur[1] then
    prev = cjson.decode(cur[1])
    prev_status = prev.status
    for _, f in ipairs(fields) do
      if not isnull(prev[f]) then record[f] = prev[f] end
    end
  end
  local seq = 0
  local text = false
  if wins then
    local stored = cjson.encode(record)
    redis.call('HSET', rkey, 'record', stored, 'rank', rank, 'at', at, 'status', status)
    redis.call('SADD', p .. 'msgreceipts:' .. event.message_sid, event.receipt_sid)
    seq, text = append({receipt = record, message_sid = event.message_sid, previous_status = prev_status,
                        service_sid = record.chat_service_sid})
  elseif prev then
    -- A stale status keeps the current state but still fills in identity fields the record lacked.
    local learnt = false
    for _, f in ipairs(fields) do
      if isnull(prev[f]) and not isnull(record[f]) then
        prev[f] = record[f]
        learnt = true
      end
    end
    if learnt then redis.call('HSET', rkey, 'record', cjson.encode(prev)) end
  end
  local entry = cjson.decode(ARGV[11])
  entry.recorded_seq = seq
  entry.ts = tonumber(ts)
  redis.call('RPUSH', p .. 'history:' .. event.receipt_sid, cjson.encode(entry))
  redis.call('ZADD', p .. 'histidx', 'NX', ts, event.receipt_sid)
  mark_seen(seq)
  return {0, text, 1}
elseif kind == 'read_horizon' then
  if isnull(event.last_read_message_index) then
    mark_seen(0)
    return {0, false, 0}
  end
  local hkey = p .. 'horizon:' .. event.participant_sid
  local prev = redis.call('GET', hkey)
  local idx = tonumber(event.last_read_message_index)
  if prev and idx <= tonumber(prev) then
    mark_seen(0)
    return {0, false, 0}
  end
  redis.call('SET', hkey, idx)
  if prev then event.previous_index = tonumber(prev) else event.previous_index = cjson.null end
  local seq, text = append(event)
  mark_seen(seq)
  return {0, text, 1}
else
  local seq, text = append_json(ARGV[5])
  mark_seen(seq)
  return {0, text, 1}
end
"""

# One bounded batch of retention: at most ARGV[3] change-log entries (the oldest prefix in seq order, stopping
# at the first one recorded at/after the cutoff), dedupe keys and receipt histories recorded before ARGV[2].
_PRUNE = r"""
local p, cutoff_s, batch = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cutoff = tonumber(cutoff_s)

local changes, last = 0, nil
local cidx = p .. 'changeidx'
for _, m in ipairs(redis.call('ZRANGE', cidx, 0, batch - 1)) do
  local seq, ts, conv = string.match(m, '^(%d+) (%S+) (.+)$')
  if tonumber(ts) >= cutoff then break end
  redis.call('ZREMRANGEBYSCORE', p .. 'changes:' .. conv, seq, seq)
  redis.call('ZREM', cidx, m)
  changes = changes + 1
  last = seq
end
local pkey = p .. 'pruned_through'
if last and tonumber(last) > tonumber(redis.call('GET', pkey) or '0') then
  redis.call('SET', pkey, last)
end

local sidx = p .. 'seenidx'
local keys = redis.call('ZRANGEBYSCORE', sidx, '-inf', '(' .. cutoff_s, 'LIMIT', 0, batch)
for _, k in ipairs(keys) do
  redis.call('DEL', p .. 'seen:' .. k)
  redis.call('ZREM', sidx, k)
end

local hidx = p .. 'histidx'
local rids = redis.call('ZRANGEBYSCORE', hidx, '-inf', '(' .. cutoff_s, 'LIMIT', 0, batch)
local history = 0
for _, rid in ipairs(rids) do
  local hkey = p .. 'history:' .. rid
  local kept, oldest = {}, nil
  for _, text in ipairs(redis.call('LRANGE', hkey, 0, -1)) do
    local ts = cjson.decode(text).ts
    if type(ts) == 'number' and ts < cutoff then
      history = history + 1
    else
      table.insert(kept, text)  -- recent, or recorded before retention existed (no ts): kept
      if type(ts) == 'number' and (oldest == nil or ts < oldest) then oldest = ts end
    end
  end
  redis.call('DEL', hkey)
  for _, text in ipairs(kept) do redis.call('RPUSH', hkey, text) end
  if oldest then redis.call('ZADD', hidx, oldest, rid) else redis.call('ZREM', hidx, rid) end
end

return {changes, #keys, history, #rids, redis.call('GET', pkey) or '0'}
"""
PRUNE_BATCH = 500  # entries per script call: one call never blocks Redis for long
MAX_PRUNE_CALLS = 100_000  # bound on one prune(); what is left waits for the next run


def _text(value: object) -> str:
    """A reply of a client made with decode_responses=True: text (typed as bytes | str by redis-py)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _kind(event: LedgerEvent) -> str:
    if isinstance(event, DeliveryEvent):
        return "delivery"
    if isinstance(event, ReadHorizonEvent):
        return "read_horizon"
    if isinstance(event, MessageEvent):
        return "message"
    return "conversation"


class RedisLedger:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "dg:ledger:",
        clock: Callable[[], float] = time.time,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.client_options = client_options or {}
        self.clock = clock  # epoch seconds stamped on what `prune` ages out (tests inject one)
        self._redis: aioredis.Redis | None = None
        self._apply: AsyncScript | None = None
        self._prune: AsyncScript | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisLedger:
        parsed = parse_redis_url(url)
        return cls(parsed.url, prefix=parsed.key_prefix("dg:ledger:"), client_options=parsed.client_options())

    async def start(self) -> None:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.url, decode_responses=True, **self.client_options)
            self._apply = self._redis.register_script(_APPLY)
            self._prune = self._redis.register_script(_PRUNE)
            await self._redis.ping()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def ping(self) -> None:
        await self._r.ping()

    @property
    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisLedger used before start()")
        return self._redis

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # inbox
    async def inbox_add(self, body: str) -> int:
        entry_id = int(await self._r.incr(self._k("inbox_id")))
        await self._r.hset(self._k("inbox"), str(entry_id), body)
        return entry_id

    async def inbox_pending(self, limit: int = 1000) -> list[tuple[int, str]]:
        entries = await self._r.hgetall(self._k("inbox"))
        return sorted((int(k), _text(v)) for k, v in entries.items())[:limit]

    async def inbox_done(self, entry_id: int) -> None:
        await self._r.hdel(self._k("inbox"), str(entry_id))

    # apply
    async def apply(self, event: LedgerEvent) -> ApplyResult:
        kind = _kind(event)
        data = event_to_dict(event)
        args: list[str | int] = [
            self.prefix,
            event.dedupe_key,
            kind,
            event.conversation_sid,
            json.dumps(data),
            repr(float(self.clock())),
        ]
        if isinstance(event, DeliveryEvent):
            rank, at, status = status_key(event.status, event.date_updated)
            record = {
                "sid": event.receipt_sid,
                "conversation_sid": event.conversation_sid,
                "message_sid": event.message_sid,
                "participant_sid": event.participant_sid,
                "account_sid": event.account_sid,
                "chat_service_sid": event.service_sid,
                "channel_message_sid": event.channel_message_sid,
                "status": event.status.value,
                "error_code": event.error_code,
                "date_created": event.date_created,
                "date_updated": event.date_updated,
            }
            entry = HistoryEntry(event.status, event.error_code, event.date_updated, event.source, 0)
            args += [rank, at, status, json.dumps(record), json.dumps(entry.to_dict())]
        assert self._apply is not None, "RedisLedger used before start()"
        duplicate, text, recorded = await self._apply(args=args)
        change = LedgerChange.from_json(text) if text else None
        return ApplyResult(change=change, duplicate=bool(duplicate), recorded=bool(recorded))

    async def changes_after(self, conversation_sid: str, after_seq: int, limit: int = 1000) -> list[LedgerChange]:
        rows = await self._r.zrangebyscore(
            self._k("changes", conversation_sid), f"({after_seq}", "+inf", start=0, num=limit
        )
        return [LedgerChange.from_json(_text(r)) for r in rows]

    async def last_seq(self) -> int:
        return int(await self._r.get(self._k("seq")) or 0)

    async def receipt(self, sid: str) -> ReceiptRecord | None:
        text = await self._r.hget(self._k("receipt", sid), "record")
        return ReceiptRecord.from_json(text) if text else None

    async def receipts_for_message(self, message_sid: str) -> list[ReceiptRecord]:
        sids = sorted(await self._r.smembers(self._k("msgreceipts", message_sid)))
        if not sids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hget(self._k("receipt", _text(sid)), "record")
            texts = await pipe.execute()
        return [ReceiptRecord.from_json(t) for t in texts if t]

    async def history(self, receipt_sid: str) -> list[HistoryEntry]:
        return (await self.history_many([receipt_sid]))[receipt_sid]

    async def history_many(self, receipt_sids: Iterable[str]) -> dict[str, list[HistoryEntry]]:
        sids = list(dict.fromkeys(receipt_sids))
        if not sids:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.lrange(self._k("history", sid), 0, -1)
            lists = await pipe.execute()
        return {
            sid: sort_history(HistoryEntry.from_dict(json.loads(t)) for t in texts)
            for sid, texts in zip(sids, lists, strict=True)
        }

    async def read_horizon(self, participant_sid: str) -> int | None:
        value = await self._r.get(self._k("horizon", participant_sid))
        return None if value is None else int(value)

    async def record_resend(self, conversation_sid: str, old_sid: str, new_sid: str) -> None:
        if await self._r.hsetnx(self._k("resend_of"), new_sid, old_sid):
            await self._r.rpush(self._k("resent_as", old_sid), new_sid)

    async def resent_as(self, old_sid: str) -> list[str]:
        return [_text(sid) for sid in await self._r.lrange(self._k("resent_as", old_sid), 0, -1)]

    async def resend_of(self, new_sid: str) -> str | None:
        value = await self._r.hget(self._k("resend_of"), new_sid)
        return None if value is None else _text(value)

    # retention
    async def prune(self, before: datetime) -> PruneResult:
        """Runs the pruning script batch by batch (each one short and atomic) until nothing old is left."""
        cutoff = repr(float(before.timestamp()))
        changes = dedupe = history = 0
        pruned = 0
        assert self._prune is not None, "RedisLedger used before start()"
        for _ in range(MAX_PRUNE_CALLS):
            c, d, h, rids, pruned = await self._prune(args=[self.prefix, cutoff, PRUNE_BATCH])
            changes, dedupe, history = changes + int(c), dedupe + int(d), history + int(h)
            if max(int(c), int(d), int(rids)) < PRUNE_BATCH:
                break
        return PruneResult(changes, dedupe, history, int(pruned))

    async def pruned_through(self) -> int:
        return int(await self._r.get(self._k("pruned_through")) or 0)
