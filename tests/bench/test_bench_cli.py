"""The bench's command line and its pure parts: row selection, the one-line failure without wrk, wave counting,
percentiles and the verdict of a row against its target.
"""

from __future__ import annotations

import json
import math

import pytest

from bench import __main__ as cli
from bench import wrk
from bench.cold import count_waves, phases, wave_groups
from bench.harness import RowResult, percentile, summary_table


def test_rows_are_selected_by_name_or_number_in_table_order_once() -> None:
    assert cli.parse([]).selected == list(cli.ROWS)
    assert cli.parse(["cold", "1", "warm", "profile"]).selected == ["cold", "warm", "profile"]
    quick = cli.parse(["--quick", "fanout"])
    assert quick.subscribers == "200" and quick.duration == 5.0
    assert cli.parse(["--quick", "--duration", "7"]).duration == 7.0


def test_an_unknown_row_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.parse(["warmest"])
    assert exit_.value.code == 2
    assert "unknown row 'warmest'" in capsys.readouterr().err


def test_without_wrk_the_bench_fails_with_one_line_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(wrk.shutil, "which", lambda name: None)

    assert cli.main(["warm"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "wrk not found" in captured.err and "apt-get install -y wrk" in captured.err


def test_waves_are_rounds_that_started_after_an_earlier_answer() -> None:
    two_rounds = [[0.0, 1.0], [0.0, 1.1], [0.01, 1.0], *([1.2, 2.2],) * 5]
    assert count_waves(two_rounds) == 2
    # A concurrency limit of 2 splitting 4 parallel calls: the 3rd starts when the 1st answers.
    limited = [[0.0, 1.0], [0.0, 1.0], [1.0, 2.0], [1.0, 2.0]]
    assert count_waves(limited) == 2
    chain = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]
    assert count_waves(chain) == 4
    assert count_waves([]) == 0
    # A burst the server took up slowly: its last request starts just after the first answer, right behind the
    # previous start; with a gap it stays in its wave, without one it looks like a second wave.
    slow_burst = [[0.0, 1.0], [0.9, 1.9], [1.01, 2.0]]
    assert count_waves(slow_burst) == 2
    assert count_waves(slow_burst, gap=0.25) == 1


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_a_row_meets_its_target_only_when_the_ratio_and_every_check_do() -> None:
    row = RowResult("r", "m", "ref", ratio=0.9, ratio_target=0.8, target=">= 0.8")
    assert row.verdict() == "meets"
    lower = RowResult("r", "m", "ref", ratio=1.3, ratio_target=1.25, ratio_better="lower", target="<= 1.25")
    assert lower.verdict() == "misses"
    checked = RowResult("r", "m", "ref", ratio=1.0, ratio_target=1.1, ratio_better="lower", checks={"tasks": False})
    assert checked.verdict() == "misses (tasks)"
    skipped = RowResult("r", "", "", skipped="not available")
    assert skipped.verdict() == "skipped" and skipped.meets is None
    nan = RowResult("r", "m", "ref", ratio=float("nan"), ratio_target=0.8)
    assert nan.verdict() == "misses"
    table = summary_table([row, skipped])
    assert "meets" in table and "skipped - r: not available" in table
    assert row.as_json()["ratio"] == 0.9 and nan.as_json()["ratio"] is None


@pytest.mark.timeout(60)
def test_one_row_runs_from_the_command_line_with_a_summary_and_json(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.json"

    assert cli.main(["2", "--executions", "1", "--blocks", "1", "--json", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "cpu: " in printed and "python " in printed and "command: python -m bench 2" in printed
    assert "== 2. warm execution" in printed and "== summary" in printed
    (row,) = json.loads(out.read_text())
    assert row["row"].startswith("2 warm execution") and row["ratio"] > 0
    assert row["numbers"]["fields"] == row["numbers"]["plain_fields"]


def test_phases_place_a_request_time_around_its_waves() -> None:
    # Sent at 0; round one 1..26 ms (the last answer at 30), round two starting at 34..40, one late call at 60 (an
    # extra wave: it starts after round two's first answer, 20 ms after the previous start), the response at 80.
    timeline = [[0.001, 0.026], [0.0012, 0.030], [0.034, 0.059], [0.040, 0.065], [0.060, 0.070]]
    found = phases(timeline, sent=0.0, answered=0.080, gap=0.005)
    assert count_waves(timeline, gap=0.005) == 3
    assert [len(w) for w in wave_groups(timeline, gap=0.005)] == [2, 2, 1]
    assert found.before_first_call == pytest.approx(1.0)
    assert found.between_rounds == pytest.approx(4.0)
    assert found.later_starts_spread == pytest.approx(26.0)  # every later wave's starts, the split-off one too
    assert found.after_last_answer == pytest.approx(10.0)
    one_round = phases([[0.002, 0.027]], sent=0.0, answered=0.030)
    assert math.isnan(one_round.between_rounds) and math.isnan(one_round.later_starts_spread)
    assert one_round.after_last_answer == pytest.approx(3.0)
    assert math.isnan(phases([], sent=0.0, answered=1.0).after_last_answer)
