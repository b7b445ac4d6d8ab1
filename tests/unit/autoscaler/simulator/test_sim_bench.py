"""bench/control_quality.py: which spec set runs on which scenario, and the table."""

from __future__ import annotations

from pathlib import Path

from bench.control_quality import discover, render

SCENARIOS = ["bursty", "cron-batch", "diurnal", "spike"]


def test_specs_are_found_by_name_per_scenario_or_for_every_scenario(tmp_path: Path) -> None:
    for name in (
        "baseline-bursty.yaml",
        "baseline-cron-batch.yaml",
        "baseline-diurnal.yaml",
        "baseline-spike.yaml",
        "pid.yaml",
        "pid-spike.yaml",
        "fast-cron.yaml",
        ".hidden.yaml",
        "notes.md",
    ):
        (tmp_path / name).write_text("")
    (tmp_path / "tuned-diurnal").mkdir()
    found = discover(tmp_path, SCENARIOS)
    assert set(found) == {"baseline", "pid", "fast-cron", "tuned"}
    assert found["baseline"]["cron-batch"] == tmp_path / "baseline-cron-batch.yaml"
    assert found["pid"]["spike"] == tmp_path / "pid-spike.yaml"  # the specific file wins
    assert found["pid"]["diurnal"] == tmp_path / "pid.yaml"
    assert set(found["fast-cron"]) == set(SCENARIOS)  # "cron" is not a scenario: generic
    assert found["tuned"] == {"diurnal": tmp_path / "tuned-diurnal"}


def test_the_table_gives_ratios_to_the_baseline_of_the_same_scenario() -> None:
    figures = {
        "node_seconds": 1000,
        "efficiency": 0.5,
        "late_fraction": 0.01,
        "p99_wait_seconds": 100.0,
        "scale_actions": 3,
        "max_nodes": 4,
        "wall_seconds": 1.0,
    }
    better = {**figures, "node_seconds": 800, "p99_wait_seconds": 50.0}
    table = render(
        ["spike"],
        ["baseline", "pid"],
        {("spike", "baseline"): figures, ("spike", "pid"): better},
    )
    rows = table.splitlines()[2:]
    assert rows[0].startswith("| spike | baseline | 1,000 | 1.00× |")
    assert rows[1].startswith("| spike | pid | 800 | 0.80× | 0.500 | 0.0100 | 50.0 | 0.50× |")
