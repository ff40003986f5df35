"""The reconciler through `create_app` against the emulator: a late webhook for a change it applied is a
duplicate, it backs off while Twilio answers 429, keeps to its share of the upstream concurrency, is off at 0, and
two replicas on one PostgreSQL store never re-read the same receipt within one period.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from delivery_gateway.emulator import RunningEmulator, serve_emulator
from delivery_gateway.emulator.webhook_events import delivery_params
from delivery_gateway.kernel.settings import Settings
from delivery_gateway.upstream.client import UpstreamClient
from delivery_gateway.webhooks import WEBHOOK_PATH
from tests.app_support import running_app
from tests.live.harness import demo, sign
from tests.live.test_end_to_end import MESSAGE_QUERY, conversation_with_recipients, emulator_config

PERIOD = 0.3


def settings_for(emulator: RunningEmulator, store_url: str, **overrides: Any) -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": emulator.state.config.account_sid,
        "TWILIO_AUTH_TOKEN": emulator.state.config.auth_token,
        "DELIVERY_GATEWAY_TWILIO_BASE_URL": emulator.base_url,
        "DELIVERY_GATEWAY_STORE_URL": store_url,
        "DELIVERY_GATEWAY_RECONCILE_SECONDS": PERIOD,
    }
    values.update(overrides)
    return demo(Settings(_env_file=None, **values))


class Recording:
    """The app's real upstream client, with the time and message of every receipts list it is asked for."""

    def __init__(self, inner: UpstreamClient, log: list[tuple[float, str, str]], name: str) -> None:
        self.inner, self.log, self.name = inner, log, name

    async def list_receipts(self, conversation_sid: str, message_sid: str, **kwargs: Any) -> Any:
        self.log.append((time.monotonic(), message_sid, self.name))
        return await self.inner.list_receipts(conversation_sid, message_sid, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.asynccontextmanager
async def gateway(settings: Settings, upstream: Any = None) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(settings, upstream) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield app.state.gateway, http


async def wait_for(condition: Callable[[], Any], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def seen_by_query(http: httpx.AsyncClient, conversation_sid: str, message_sid: str) -> dict[str, Any]:
    body = (
        await http.post(
            "/graphql", json={"query": MESSAGE_QUERY, "variables": {"c": conversation_sid, "m": message_sid}}
        )
    ).json()
    assert not body.get("errors"), body
    return body["data"]["message"]


async def test_the_late_webhook_for_a_change_reconciliation_applied_changes_nothing(tmp_path):
    async with serve_emulator(emulator_config(webhook_drop_rate=1.0)) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        message, receipts = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        async with gateway(settings_for(emulator, f"sqlite:///{tmp_path}/l.db")) as (gw, http):
            await seen_by_query(http, conversation.sid, message.sid)
            await state.simulator.advance_all()
            ledger = gw.services.ledger

            async def reconciled() -> bool:
                found = {r.sid: r.status for r in await ledger.receipts_for_message(message.sid)}
                return found == {r.sid: r.status for r in receipts}

            await wait_for(reconciled)
            last_seq = await ledger.last_seq()
            histories = await ledger.history_many([r.sid for r in receipts])
            assert {entries[-1].source for entries in histories.values()} == {"reconcile"}

            # The webhooks Twilio lost arrive after all (late): each is a duplicate, nothing changes.
            url = "http://gateway.test" + WEBHOOK_PATH
            for receipt in receipts:
                params = {"EventType": "onDeliveryUpdated", **delivery_params(state.store, receipt)}
                response = await http.post(url, data=params, headers=sign(state.config.auth_token, url, params))
                assert response.status_code == 200, response.text
            await gw.ingest.drain()
            assert await ledger.last_seq() == last_seq
            assert await ledger.history_many([r.sid for r in receipts]) == histories
            duplicates = gw.services.metrics.sample(
                "delivery_gateway_webhooks_received_total", {"event_type": "DeliveryEvent", "outcome": "duplicate"}
            )
            assert duplicates == len(receipts)


async def test_it_backs_off_while_twilio_answers_429_and_catches_up_after(tmp_path):
    async with serve_emulator(emulator_config(webhook_drop_rate=1.0)) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        message, receipts = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        log: list[tuple[float, str, str]] = []
        settings = settings_for(
            emulator,
            f"sqlite:///{tmp_path}/l.db",
            DELIVERY_GATEWAY_UPSTREAM_MAX_RETRIES=0,
            DELIVERY_GATEWAY_UPSTREAM_RATE_LIMIT_BUDGET=0,
        )
        upstream = Recording(UpstreamClient(settings), log, "one")
        async with gateway(settings, upstream) as (gw, http):
            await seen_by_query(http, conversation.sid, message.sid)
            log.clear()
            state.config.rate_limit_rate = 1.0
            await state.simulator.advance_all()
            await asyncio.sleep(3.0)
            # Without a pause: a list every quarter period (~40 in 3 s). With it: 1 + pauses of 1, 2, 4, 8 periods.
            assert 2 <= len(log) <= 5, log
            assert gw.reconciler.backoff >= 4 * PERIOD
            metrics = gw.services.metrics
            assert metrics.sample("delivery_gateway_reconcile_polls_total", {"outcome": "rate_limited"}) == len(log)
            assert await gw.services.ledger.receipts_for_message(message.sid) == []

            state.config.rate_limit_rate = 0.0

            async def caught_up() -> bool:
                found = {r.sid: r.status for r in await gw.services.ledger.receipts_for_message(message.sid)}
                return found == {r.sid: r.status for r in receipts}

            await wait_for(caught_up, within=16 * PERIOD + 5)
            await asyncio.sleep(PERIOD)
            assert gw.reconciler.backoff == 0.0


async def test_it_keeps_to_its_share_of_the_upstream_concurrency(tmp_path):
    config = emulator_config(webhook_drop_rate=1.0, latency=0.05)
    async with serve_emulator(config) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        messages = [state.store.create_message(conversation.sid, author="agent", body=f"m{n}")[0] for n in range(24)]
        settings = settings_for(emulator, f"sqlite:///{tmp_path}/l.db", DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY=8)
        assert settings.reconcile_parallelism == 2
        async with gateway(settings) as (gw, http):
            for message in messages:
                await seen_by_query(http, conversation.sid, message.sid)
            state.requests.reset()  # from here on, every request is the reconciler's
            metrics = gw.services.metrics
            polled = metrics.sample("delivery_gateway_reconcile_polls_total", {"outcome": "ok"})

            async def all_polled() -> bool:  # one more round of every message
                done = metrics.sample("delivery_gateway_reconcile_polls_total", {"outcome": "ok"})
                return done >= polled + 2 * len(messages)

            await wait_for(all_polled)
            assert state.requests.max_in_flight == 2

            async def gauged() -> bool:  # as of the start of a pass: every receipt still tracked (all still sent)
                return metrics.sample("delivery_gateway_reconcile_tracked_receipts") == 2 * len(messages)

            await wait_for(gauged)


async def test_zero_switches_it_off(tmp_path):
    async with serve_emulator(emulator_config(webhook_drop_rate=1.0)) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        settings = settings_for(emulator, f"sqlite:///{tmp_path}/l.db", DELIVERY_GATEWAY_RECONCILE_SECONDS=0)
        async with gateway(settings) as (gw, http):
            await seen_by_query(http, conversation.sid, message.sid)
            calls = state.requests.count()
            await state.simulator.advance_all()
            await asyncio.sleep(0.5)
            assert not gw.reconciler.enabled and gw.reconciler.passes == 0
            assert state.requests.count() == calls
            assert await gw.services.ledger.receipts_for_message(message.sid) == []


@pytest.mark.postgres
async def test_two_replicas_on_one_postgresql_store_never_reread_a_receipt_within_one_period(postgres_url):
    async with serve_emulator(emulator_config(webhook_drop_rate=1.0)) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        messages = [state.store.create_message(conversation.sid, author="agent", body=f"m{n}")[0] for n in range(30)]
        lists: list[tuple[float, str, str]] = []
        claims: list[tuple[float, str, str]] = []  # (the ledger's claim time, receipt, replica)
        stopped = asyncio.Event()
        settings = settings_for(emulator, postgres_url)
        one = Recording(UpstreamClient(settings), lists, "one")
        two = Recording(UpstreamClient(settings), lists, "two")
        async with gateway(settings, one) as (gw_one, http_one), gateway(settings, two) as (gw_two, http_two):
            for gw, name in ((gw_one, "one"), (gw_two, "two")):
                ledger, claim = gw.services.ledger, gw.services.ledger.claim_tracked

                async def recorded(*args: Any, _claim: Any = claim, _name: str = name, **kwargs: Any) -> Any:
                    if stopped.is_set():
                        return []
                    rows = await _claim(*args, **kwargs)
                    claims.extend((row.checked_at, row.receipt_sid, _name) for row in rows)
                    return rows

                ledger.claim_tracked = recorded
            for n, message in enumerate(messages):
                await seen_by_query(http_one if n % 2 else http_two, conversation.sid, message.sid)
            await asyncio.sleep(8 * PERIOD)
            stopped.set()  # no claim from here on; the polls of the last ones finish
            await asyncio.sleep(2 * PERIOD)
        by_receipt: dict[str, list[float]] = {}
        for at, receipt_sid, _ in sorted(claims):
            by_receipt.setdefault(receipt_sid, []).append(at)
        assert len(by_receipt) == 2 * len(messages)  # every receipt re-read...
        for receipt_sid, times in by_receipt.items():
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert all(gap >= PERIOD for gap in gaps), (receipt_sid, times)  # ...never twice in one period
        assert {name for _, _, name in claims} == {"one", "two"}  # by both replicas
        # One Receipts list per message and claim (both receipts of a message re-read together), besides the
        # one each message's first query made.
        assert len(lists) == len(claims) // 2 + len(messages)
        assert {message_sid for _, message_sid, _ in lists} == {m.sid for m in messages}


async def test_a_deleted_message_is_forgotten_after_one_answered_list(tmp_path):
    async with serve_emulator(emulator_config(webhook_drop_rate=1.0)) as emulator:
        state = emulator.state
        conversation = conversation_with_recipients(emulator)
        message, _ = state.store.create_message(conversation.sid, author="agent", body="hi", notify=True)
        async with gateway(settings_for(emulator, f"sqlite:///{tmp_path}/l.db")) as (gw, http):
            await seen_by_query(http, conversation.sid, message.sid)
            state.store.delete_message(message)
            metrics = gw.services.metrics

            async def forgotten() -> bool:
                stats = await gw.services.ledger.tracked_stats(period=PERIOD, window=86400)
                return stats.tracked == 0

            await wait_for(forgotten)
            assert metrics.sample("delivery_gateway_reconcile_polls_total", {"outcome": "gone"}) == 1
            await asyncio.sleep(2 * PERIOD)
            assert metrics.sample("delivery_gateway_reconcile_polls_total", {"outcome": "gone"}) == 1


def test_its_share_of_the_upstream_concurrency_is_bounded() -> None:
    assert Settings(_env_file=None).upstream_concurrency == 64
    assert Settings(_env_file=None).reconcile_parallelism == 16  # a quarter of the upstream concurrency
    assert Settings(_env_file=None, DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY=2).reconcile_parallelism == 1
    assert Settings(_env_file=None, DELIVERY_GATEWAY_RECONCILE_CONCURRENCY=3).reconcile_parallelism == 3
    with pytest.raises(ValueError, match="must not exceed DELIVERY_GATEWAY_UPSTREAM_CONCURRENCY"):
        Settings(_env_file=None, DELIVERY_GATEWAY_RECONCILE_CONCURRENCY=65)
    with pytest.raises(ValueError, match="DELIVERY_GATEWAY_RECONCILE_SECONDS"):
        Settings(_env_file=None, DELIVERY_GATEWAY_RECONCILE_SECONDS=-1)
