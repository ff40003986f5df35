"""Every row of `python -m bench` run at a tiny size, so a broken harness fails CI (the whole file: ~20 s).

Never asserts a performance threshold: only that each row runs to the end, measures what it claims (the same
response as its reference, the calls and waves it counted, every event delivered, every 200 durable) and comes
out with finite numbers and a ratio against its reference.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bench.harness import RowResult, ServerProcess, emulator_process
from tests.postgres_support import require_postgres
from tests.redis_support import require_redis

REQUIRE_WRK = "DELIVERY_GATEWAY_REQUIRE_WRK"

# One loop for the module, so the rows can share one emulator subprocess (started once, ~0.5 s saved per row).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emulator() -> AsyncIterator[ServerProcess]:
    async with emulator_process() as shared:
        yield shared


def require_wrk() -> None:
    """Skip without wrk; fail if $DELIVERY_GATEWAY_REQUIRE_WRK is set (CI installs it)."""
    if shutil.which("wrk"):
        return
    message = "wrk not found: install the Debian package with `apt-get install -y wrk`"
    if os.environ.get(REQUIRE_WRK):
        pytest.fail(f"{message} ({REQUIRE_WRK} is set)")
    pytest.skip(message)


def finite(*values: float) -> bool:
    return all(isinstance(v, float | int) and math.isfinite(v) for v in values)


def assert_row(row: RowResult) -> None:
    assert row.skipped is None, row.skipped
    assert row.measured and row.reference and row.target
    assert row.verdict() in ("meets", "-") or row.verdict().startswith("misses")


@pytest.mark.timeout(60)
async def test_warm_row_measures_the_gateway_and_the_raw_stack_with_wrk(emulator: ServerProcess) -> None:
    require_wrk()
    from bench.warm import run_warm

    report = await run_warm(duration=1, connections=2, rounds=1, cpu_requests=2, emulator=emulator)

    assert report.identical_bytes and report.response_bytes > 50_000
    assert report.raw.ok_requests > 0 and report.gateway.ok_requests > 0
    assert report.gateway.non_2xx == 0 and report.gateway.socket_errors == 0
    assert report.upstream_warmup == 53 and report.upstream_in_windows == 0
    assert finite(report.ratio, report.raw.wrk_cpu_share, report.gateway_cpu_ms, report.raw_cpu_ms)
    assert report.gateway_cpu_ms > 0 and report.raw_cpu_ms > 0
    assert report.load_cpu_ms(report.gateway) > 0 and report.load_cpu_ms(report.raw) > 0
    assert 0 < report.raw.wrk_cpu_s and 0 < report.raw.server_cpu_s
    assert "RATIO gateway/raw req/s" in report.render()
    assert_row(report.row())


@pytest.mark.timeout(60)
async def test_execution_row_counts_the_same_fields_as_its_plain_reference(emulator: ServerProcess) -> None:
    from bench.execution import run_execution

    report = await run_execution(executions=2, blocks=2, warmup=0, emulator=emulator)

    assert report.same_response
    assert len(report.pair_ratios) == 2 and report.gateway.executions == report.plain.executions == 4
    assert finite(*report.pair_ratios, *report.ratio_spread)
    assert report.gateway_counts.fields == report.plain_counts.fields > 2000
    assert report.plain_counts.resolvers == 2 and report.plain_counts.tasks == 0
    assert report.gateway_counts.resolvers > 0 and report.gateway_counts.loader_loads > 0
    assert report.upstream_calls_timed == 0
    assert finite(report.ratio, report.gateway.ms, report.plain.ms)
    assert_row(report.row())


@pytest.mark.timeout(60)
async def test_instruction_count_runs_set_up_row_2_and_run_either_side(emulator: ServerProcess) -> None:
    from bench.instructions import run

    for side in ("gateway", "plain", "none"):
        await run(side, 1, emulator=emulator)
    with pytest.raises(ValueError, match="side must be one of"):
        await run("both", 1, emulator=emulator)


@pytest.mark.timeout(60)
async def test_cold_profile_splits_a_cold_requests_cpu_by_phase_and_profiles_it(emulator: ServerProcess) -> None:
    from bench.cold_profile import run

    report = await run(3, 1, 5, emulator=emulator)
    assert "3 cold requests in-process, 25 ms upstream latency, 53 upstream calls each" in report
    for phase in ("CPU total", "to first call", "first round", "to second round", "second round", "after last"):
        assert phase in report
    assert "own time by package:" in report and "delivery_gateway.graphql" in report


@pytest.mark.timeout(60)
async def test_cold_row_compares_the_gateway_with_the_two_round_floor(emulator: ServerProcess) -> None:
    from bench.cold import run_cold

    report = await run_cold(latency_ms=20, iterations=3, emulator=emulator)

    assert len(report.gateway) == len(report.floor) == len(report.new_document) == 3
    # Two rounds by construction; a busy machine can stall the client long enough to show a third.
    assert min(s.waves for s in report.floor) == 2
    # The same document sent again still makes every call: nothing answers it from a cache.
    assert {s.calls for s in report.floor} == {s.calls for s in report.gateway} == {53}
    assert {s.calls for s in report.new_document} == {53}
    assert all(s.waves >= 2 for s in report.gateway)
    assert finite(report.ratio, report.floor_ms, report.gateway_ms) and report.limit_ms >= 40
    assert_row(report.row())


@pytest.mark.timeout(60)
async def test_fanout_row_delivers_every_event_to_every_subscriber(emulator: ServerProcess) -> None:
    from bench.fanout import run_fanout

    (report,) = await run_fanout(sizes=[5], events=2, emulator=emulator)

    for side in (report.gateway, report.raw):
        assert side.missed == 0 and not side.errors
        assert side.sends == 10 and finite(side.p(50), side.p(99), side.sends_per_cpu_second)
        assert side.client_cpu_s > 0
    assert report.raw.frame_bytes > 100
    assert finite(report.ratio, report.kb_per_subscriber)
    assert_row(report.row())


@pytest.mark.timeout(60)
async def test_ingest_row_acknowledges_only_durable_events_and_skips_unsupported_stores() -> None:
    require_wrk()
    from bench.ingest import run_ingest

    sqlite, postgres = await run_ingest(duration=1, connections=4, postgres_url="postgresql://postgres@127.0.0.1:5432")

    assert sqlite.wrk is not None and sqlite.wrk.ok_requests > 0 and sqlite.wrk.non_2xx == 0
    assert sqlite.durable and sqlite.recorded_after_kill >= sqlite.wrk.ok_requests
    assert finite(sqlite.events_per_second, sqlite.acked_per_second)
    assert_row(sqlite.row())
    if postgres.skipped is not None:  # e.g. until the gateway accepts postgresql:// store URLs: said, not hidden
        assert postgres.skipped.strip()
        assert postgres.row().verdict() == "skipped"
    else:
        assert postgres.durable and postgres.wrk is not None and postgres.wrk.ok_requests > 0


@pytest.mark.timeout(60)
async def test_replica_row_measures_both_replicas(emulator: ServerProcess) -> None:
    require_redis()
    require_postgres()  # the replicas share a PostgreSQL ledger
    from bench.replicas import run_replicas

    report = await run_replicas(events=2, emulator=emulator)

    assert report.skipped is None, report.skipped
    assert report.missed == 0 and len(report.same_ms) == len(report.cross_ms) == 2
    assert finite(report.extra_ms)
    assert_row(report.row())
