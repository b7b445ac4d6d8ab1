"""The baseline specs in bench/specs match the shared scenarios (bench/README.md, Baseline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.simulator.run import load

ROOT = Path(__file__).resolve().parents[4]
SCENARIOS = ROOT / ".." / "shared" / "bench" / "scenarios"
NAMES = ("diurnal", "spike", "bursty", "cron-batch")


@pytest.mark.parametrize("name", NAMES)
def test_the_baseline_target_is_half_of_what_a_node_drains_within_the_slo(name: str) -> None:
    scenario_path = SCENARIOS / f"{name}.yaml"
    if not scenario_path.exists():
        pytest.skip("the shared benchmark is not next to the repository")
    scenario, specs = load(scenario_path, ROOT / "bench" / "specs" / f"baseline-{name}.yaml")
    (autoscaler,) = specs.autoscalers.values()
    (producer,) = specs.producers.values()
    (metric,) = autoscaler.spec.metrics
    nodes, slo = scenario.spec.nodes, scenario.spec.slo
    assert metric.target.type == "AverageValue"
    assert metric.target.amount == nodes.items_per_second * slo.max_item_age_seconds / 2
    assert producer.spec.queue is not None and producer.spec.interval_seconds == 15
    assert autoscaler.spec.algorithm.type == "Proportional"
    assert autoscaler.spec.behavior.scale_up.policies is None  # HPA defaults
    assert autoscaler.spec.behavior.scale_down.stabilization_window_seconds is None


def test_the_generic_example_is_the_diurnal_baseline() -> None:
    example = (ROOT / "examples" / "bench" / "baseline.yaml").read_text()
    specific = (ROOT / "bench" / "specs" / "baseline-diurnal.yaml").read_text()
    body = example[example.index("apiVersion:") :]
    assert body == specific[specific.index("apiVersion:") :]
