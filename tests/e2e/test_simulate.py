"""``autoscaler simulate`` as a real process, on a two-hour scenario (tests/e2e/scenarios)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SCENARIO = SCENARIOS / "small.yaml"
SPEC = SCENARIOS / "baseline-small.yaml"
CONTRACT_KEYS = {
    "node_seconds",
    "work_seconds",
    "efficiency",
    "late_items",
    "late_fraction",
    "p99_wait_seconds",
    "slo_violation_seconds",
    "scale_actions",
    "max_nodes",
}
pytestmark = pytest.mark.integration


def _simulate(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_json_output_is_one_object_with_the_contract_keys_and_the_report_is_written(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.html"
    result = _simulate(
        "--scenario", str(SCENARIO), "--config", str(SPEC), "--json", "--report", str(report)
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)  # the whole output is exactly one JSON object
    assert set(figures) >= CONTRACT_KEYS
    assert figures["duration_seconds"] == 7200
    assert figures["items"] == figures["work_seconds"] * 2
    assert figures["max_nodes"] > 2  # the burst at 00:30 made it scale up
    assert 0 < figures["efficiency"] <= 1
    assert result.stderr == ""  # no progress bar without a terminal
    page = report.read_text(encoding="utf-8")
    assert page.count("<svg") == 4 and "SLO 300 s" in page


def test_the_same_run_twice_gives_the_same_figures() -> None:
    runs = [_simulate("--scenario", str(SCENARIO), "--config", str(SPEC), "--json") for _ in "ab"]
    first, second = (json.loads(run.stdout) for run in runs)
    first.pop("wall_seconds")
    second.pop("wall_seconds")
    assert first == second


def test_without_json_the_figures_are_printed_as_a_table() -> None:
    result = _simulate("--scenario", str(SCENARIO), "--config", str(SPEC))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"scenario  {SCENARIO}")
    assert {line.split()[0] for line in lines if line.strip()} >= CONTRACT_KEYS


def test_a_progress_bar_is_drawn_on_a_terminal() -> None:
    controller, terminal = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = _simulate("--scenario", str(SCENARIO), "--config", str(SPEC), stderr=terminal)
    finally:
        os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    assert result.returncode == 0
    drawn = b"".join(chunks).decode()
    assert "\rsimulating [" in drawn and "100%  02:00 / 02:00" in drawn


def test_an_invalid_scenario_is_reported_with_its_line_and_exit_code_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.read_text().replace("startupSeconds: 90", "startupSeconds: -1"))
    (tmp_path / "small.csv").write_text((SCENARIOS / "small.csv").read_text())
    result = _simulate("--scenario", str(bad), "--config", str(SPEC), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "-1" in text)
    assert f"{bad}:{line}: nodes.startupSeconds: Input should be greater than or equal to 0" in (
        result.stderr
    )


def test_activation_lets_a_trickle_wait_at_zero_nodes_without_late_items(tmp_path: Path) -> None:
    """Two hours of one item per 30 s and a 6,000-item batch at 01:00, from zero nodes: the
    recommended spec with its activation conditions against the same spec without them."""
    import yaml

    from bench import recipes

    rows = ["time_s,arrivals"]
    for slot in range(720):
        batch = 2000 if slot in (360, 361, 362) else 0
        rows.append(f"{slot * 10},{batch or int(slot % 3 == 0)}")
    (tmp_path / "trickle.csv").write_text("\n".join(rows) + "\n")
    scenario = tmp_path / "trickle.yaml"
    scenario.write_text(
        "workload: {trace: trickle.csv}\n"
        "nodes: {initial: 0, startupSeconds: 60, itemsPerSecond: 5.0, min: 0, max: 50}\n"
        "slo: {maxItemAgeSeconds: 600}\n"
    )
    workload = recipes.Workload("trickle", 5.0, 600, 60, max_nodes=50)
    with_activation = tmp_path / "with.yaml"
    with_activation.write_text(recipes.render("proportional-tuned", workload))
    docs = recipes.parse(with_activation.read_text())
    for doc in docs:
        doc["spec"].pop("activation", None)
    without = tmp_path / "without.yaml"
    without.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    gated, plain = (
        json.loads(_simulate("--scenario", str(scenario), "--config", str(c), "--json").stdout)
        for c in (with_activation, without)
    )

    assert gated["late_items"] == plain["late_items"] == 0
    assert gated["node_seconds"] < 0.5 * plain["node_seconds"]  # 2,250 against 6,990
    assert gated["scale_actions"] < plain["scale_actions"] / 2  # 27 against 154
    assert gated["max_nodes"] >= 2  # the batch still starts nodes at once
