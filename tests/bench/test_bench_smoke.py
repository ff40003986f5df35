"""Runs `python -m bench` in a tiny configuration (every benchmark, a fraction of a second of load each).

Never asserts performance thresholds: only that the numbers and the ratios against the baseline come out.
"""

from __future__ import annotations

import math

import pytest

from bench.__main__ import parse, run

TINY = [
    "all",
    "--duration",
    "0.3",
    "--rounds",
    "1",
    "--concurrency",
    "2",
    "--latency",
    "5",
    "--iterations",
    "2",
    "--parallel",
    "5",
    "--http-rounds",
    "2",
]


@pytest.mark.timeout(60)
async def test_every_benchmark_produces_numbers_and_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    ratios = await run(parse(TINY))

    for name in ("warm gateway/raw req/s", "cold median/(4×latency)", "http httpx / aiohttp (warm median)"):
        assert math.isfinite(ratios[name]) and ratios[name] > 0, (name, ratios)
    assert ratios["warm upstream calls in window"] >= 0
    out = capsys.readouterr().out
    assert "RATIO gateway/raw requests/s:" in out
    assert "RATIO cold median / (4 × latency):" in out
    assert "req/s" in out and "p99 ms" in out and "upstream calls" in out
