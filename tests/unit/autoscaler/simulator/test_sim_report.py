"""The HTML report: self-contained, four plots, the figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autoscaler.config import load_text
from autoscaler.simulator.report import nice_ticks, render_report, write_report
from autoscaler.simulator.run import SimulationResult, simulate
from autoscaler.simulator.scenario import load_scenario

SPEC = """\
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: workers}
spec: {type: Simulated, id: sim}
"""


@pytest.fixture
def result(tmp_path: Path) -> SimulationResult:
    (tmp_path / "t.csv").write_text("time_s,arrivals\n0,50\n600,300\n1790,0\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "workload: {trace: t.csv}\n"
        "nodes: {initial: 2, startupSeconds: 60, itemsPerSecond: 1, max: 10}\n"
        "slo: {maxItemAgeSeconds: 90}\n"
    )
    specs = load_text(SPEC).specs
    return simulate(load_scenario(scenario), specs, config="spec.yaml")


def test_the_report_is_one_self_contained_html_file_with_four_plots(
    result: SimulationResult,
) -> None:
    page = render_report(result)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 4
    assert "<script" not in page
    urls = set(re.findall(r"https?://[^\"' )]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace only: nothing is fetched
    for title in ("Arrivals", "Queue length", "Oldest waiting item", "Nodes"):
        assert title in page
    assert "SLO 90 s" in page
    assert "node_seconds" in page and "p99_wait_seconds" in page


def test_the_report_is_written_with_its_folders(result: SimulationResult, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    write_report(result, target)
    assert target.read_text(encoding="utf-8") == render_report(result)


@pytest.mark.parametrize(
    ("high", "ticks"),
    [
        pytest.param(37, [0, 10, 20, 30, 40], id="tens"),
        pytest.param(600, [0, 200, 400, 600], id="exact-top"),
        pytest.param(0.3, [0, 0.1, 0.2, 0.3], id="fractions"),
        pytest.param(0, [0, 1], id="empty"),
    ],
)
def test_axis_ticks_are_round_numbers_covering_the_data(high: float, ticks: list[float]) -> None:
    assert nice_ticks(high) == ticks
