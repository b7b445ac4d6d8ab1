"""Scenario files and traces: what is accepted, and how problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.simulator.scenario import (
    ScenarioError,
    load_scenario,
    load_trace,
    parse_scenario,
)

SCENARIO = """\
workload:
  trace: trace.csv
nodes:
  initial: 2
  startupSeconds: 90
  itemsPerSecond: 1.5
  min: 0
  max: 20
slo:
  maxItemAgeSeconds: 300
"""


def _write(
    folder: Path, scenario: str = SCENARIO, trace: str = "time_s,arrivals\n0,5\n10,7\n"
) -> Path:
    (folder / "trace.csv").write_text(trace)
    path = folder / "small.yaml"
    path.write_text(scenario)
    return path


def test_a_scenario_loads_with_its_trace_relative_to_the_scenario_file(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path))
    assert scenario.name == "small"
    assert scenario.spec.nodes.items_per_second == 1.5
    assert scenario.spec.slo.max_item_age_seconds == 300
    assert scenario.trace.counts == (5, 7)
    assert scenario.duration_seconds == 20
    assert scenario.trace.total == 12


def test_the_shared_scenarios_load() -> None:
    shared = Path(__file__).resolve().parents[4] / ".." / "shared" / "bench" / "scenarios"
    if not shared.is_dir():
        pytest.skip("the shared benchmark is not next to the repository")
    for path in sorted(shared.glob("*.yaml")):
        scenario = load_scenario(path)
        assert scenario.duration_seconds == 86_400, path


def test_a_duration_replays_only_the_start_of_the_trace(tmp_path: Path) -> None:
    text = SCENARIO.replace("  trace: trace.csv\n", "  trace: trace.csv\n  durationSeconds: 15\n")
    assert load_scenario(_write(tmp_path, text)).duration_seconds == 15


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            ("startupSeconds: 90", "startupSecond: 90"),
            [
                "small.yaml:3: nodes.startupSeconds: required field is missing",
                "small.yaml:5: nodes.startupSecond: unknown field",
            ],
            id="misspelt-field",
        ),
        pytest.param(
            ("itemsPerSecond: 1.5", "itemsPerSecond: 0"),
            ["small.yaml:6: nodes.itemsPerSecond: Input should be greater than 0"],
            id="zero-rate",
        ),
        pytest.param(
            ("max: 20", "max: 1"),
            ["small.yaml:3: nodes: initial must lie within [min, max] = [0, 1]"],
            id="initial-above-max",
        ),
        pytest.param(
            ("maxItemAgeSeconds: 300", "maxItemAgeSeconds: soon"),
            [
                "small.yaml:10: slo.maxItemAgeSeconds: Input should be a valid number, "
                "unable to parse string as a number"
            ],
            id="not-a-number",
        ),
    ],
)
def test_an_invalid_scenario_names_the_line_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: list[str]
) -> None:
    path = _write(tmp_path, SCENARIO.replace(*edit))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issues = [issue.removeprefix(f"{tmp_path}/") for issue in caught.value.issues]
    assert issues == expected


def test_a_scenario_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"x.yaml:1: a scenario must be a mapping"):
        parse_scenario("- 1\n- 2\n", "x.yaml")


def test_broken_yaml_is_reported_with_its_line() -> None:
    with pytest.raises(ScenarioError, match=r"x.yaml:2: invalid YAML: mapping values"):
        parse_scenario("nodes:\n  initial: a: b\n", "x.yaml")


def test_a_missing_trace_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "trace.csv").unlink()
    with pytest.raises(ScenarioError, match="trace file not found"):
        load_scenario(path)


def test_gaps_in_a_trace_are_buckets_without_arrivals(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,arrivals\n0,4\n30,6.0\n")
    assert load_trace(trace).counts == (4, 0, 0, 6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "time,count\n0,1\n", "t.csv:1: the header must be time_s,arrivals", id="header"
        ),
        pytest.param(
            "", "t.csv:1: the header must be time_s,arrivals, not an empty file", id="empty"
        ),
        pytest.param("time_s,arrivals\n", "t.csv:2: the trace has no rows", id="no-rows"),
        pytest.param(
            "time_s,arrivals\n0,1\n0,2\n", "t.csv:3: time_s: 0 does not come after", id="repeat"
        ),
        pytest.param(
            "time_s,arrivals\n5,1\n", "t.csv:2: time_s: 5 is not a multiple", id="off-grid"
        ),
        pytest.param(
            "time_s,arrivals\n0,-1\n",
            "t.csv:2: arrivals: '-1' is not a whole number",
            id="negative",
        ),
        pytest.param(
            "time_s,arrivals\n0,1.5\n",
            "t.csv:2: arrivals: '1.5' is not a whole number",
            id="fraction",
        ),
        pytest.param("time_s,arrivals\n0,1,2\n", "t.csv:2: expected 2 columns", id="columns"),
    ],
)
def test_a_malformed_trace_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_trace(trace)
    assert caught.value.issues[0].removeprefix(f"{tmp_path}/").startswith(message)
