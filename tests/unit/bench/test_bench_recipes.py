"""bench/recipes.py: the recipe formulas, and that every spec set it writes is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config import load_paths, load_text
from bench import recipes
from bench.recipes import RECIPES, RecipeError, Workload, derive, render

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared" / "bench" / "scenarios"

RENDER = Workload("render", items_per_second=2.0, slo_seconds=600, startup_seconds=90)


def _autoscaler(text: str) -> dict:
    (autoscaler,) = [doc for doc in recipes.parse(text) if doc["kind"] == "HorizontalAutoscaler"]
    return autoscaler["spec"]


def test_the_budget_is_the_slo_minus_the_startup_minus_two_readings() -> None:
    derived = derive(RENDER)
    assert derived.margin_seconds == 30
    assert derived.budget_seconds == 600 - 90 - 30


def test_the_target_is_the_work_one_node_does_within_the_budget() -> None:
    assert derive(RENDER).target_items == 2.0 * 480
    slow = Workload("slow", items_per_second=1.5, slo_seconds=180, startup_seconds=45)
    assert derive(slow).target_items == 1.5 * 105


def test_the_release_tolerance_leaves_less_than_one_reading_of_work_per_node() -> None:
    assert derive(RENDER).release_tolerance == round(1 - 15 / 480, 3)
    spec = _autoscaler(render("proportional-tuned", RENDER))
    assert spec["behavior"]["scaleDown"]["tolerance"] == round(1 - 15 / 480, 3)
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 0


def test_scale_up_goes_at_once_to_what_the_queue_asks_for_within_max_replicas() -> None:
    spec = _autoscaler(render("proportional-tuned", RENDER))
    (policy,) = spec["behavior"]["scaleUp"]["policies"]
    assert policy == {"type": "Pods", "value": RENDER.max_nodes, "periodSeconds": 15}


def test_the_pid_integral_takes_one_proportional_step_per_reading() -> None:
    gains = _autoscaler(render("pid", RENDER))["algorithm"]["pid"]
    assert gains["kp"] == 0
    assert gains["ki"] == round(1 / 15, 4)
    assert gains["kd"] == 90


def test_the_pid_derivative_lead_is_the_startup_time_capped_at_the_api_limit() -> None:
    slow_nodes = Workload("slow", items_per_second=5, slo_seconds=900, startup_seconds=120)
    assert derive(slow_nodes).kd == recipes.MAX_KD == 100


def test_the_predictive_horizon_is_the_node_startup_time() -> None:
    algorithm = _autoscaler(render("predictive", RENDER))["algorithm"]
    assert algorithm == {
        "type": "Proportional",
        "predictive": {"horizonSeconds": 90, "method": "Auto"},
    }


@pytest.mark.parametrize("recipe", RECIPES)
def test_at_zero_nodes_work_waits_for_one_nodes_worth_or_an_item_that_used_its_budget(
    recipe: str,
) -> None:
    spec = _autoscaler(render(recipe, RENDER))
    assert spec["minReplicas"] == 0
    assert spec["activation"] == [
        {"producer": {"name": "bench-queue"}, "above": 2.0 * 480},
        {
            "producer": {"name": "bench-queue", "metric": "queue_oldest_message_age_seconds"},
            "above": 480,
        },
    ]
    producer = next(
        d for d in recipes.parse(render(recipe, RENDER)) if d["kind"] == "MetricsProducer"
    )
    assert producer["spec"]["queue"]["oldestMessageAge"] is True


def test_an_age_read_late_lowers_the_age_threshold_by_the_lag() -> None:
    late = Workload("late", 2.0, 600, 90, age_lag_seconds=120)
    assert derive(late).activation_age_seconds == 480 - 120
    assert _autoscaler(render("pid", late))["activation"][1]["above"] == 360


def test_a_group_that_never_goes_to_zero_gets_no_activation() -> None:
    kept = Workload("kept", 2.0, 600, 90, min_nodes=2)
    assert derive(kept).activation_items is None
    assert "activation" not in _autoscaler(render("proportional-tuned", kept))
    assert load_text(render("proportional-tuned", kept)).ok


def test_a_slo_too_tight_for_the_startup_time_is_refused() -> None:
    tight = Workload("tight", items_per_second=1, slo_seconds=120, startup_seconds=80)
    with pytest.raises(RecipeError, match="leaves 10 s after the node startup"):
        derive(tight)


def test_the_baseline_target_is_half_of_what_a_node_drains_within_the_slo() -> None:
    assert _autoscaler(render("baseline", RENDER))["metrics"][0]["target"]["averageValue"] == 600
    assert "behavior" not in _autoscaler(render("baseline", RENDER))


@pytest.mark.parametrize("recipe", [*RECIPES, "baseline"])
def test_every_generated_spec_set_validates(recipe: str) -> None:
    for workload in (RENDER, Workload("odd", 1.5, 180, 45, min_nodes=1, max_nodes=40)):
        result = load_text(render(recipe, workload), f"{recipe}.yaml")
        assert not result.issues, [str(issue) for issue in result.issues]
        assert len(result.specs.autoscalers) == 1


def test_a_workload_is_read_from_the_declared_parameters_of_a_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "mine.yaml"
    scenario.write_text(
        "workload: {trace: none.csv}\n"
        "nodes: {initial: 1, startupSeconds: 60, itemsPerSecond: 3, min: 0, max: 50}\n"
        "slo: {maxItemAgeSeconds: 240}\n"
    )
    assert Workload.from_scenario(scenario) == Workload("mine", 3.0, 240.0, 60.0, 0, 50)


@pytest.mark.parametrize("name", ["bursty", "cron-batch", "diurnal", "spike"])
def test_the_committed_bench_specs_are_what_the_recipes_write(name: str) -> None:
    if not (SHARED / f"{name}.yaml").exists():
        pytest.skip("the shared benchmark is not next to the repository")
    workload = Workload.from_scenario(SHARED / f"{name}.yaml")
    for recipe in RECIPES:
        committed = (ROOT / "bench" / "specs" / f"{recipe}-{name}.yaml").read_text()
        assert committed == render(recipe, workload)
    baseline = load_paths([ROOT / "bench" / "specs" / f"baseline-{name}.yaml"]).specs
    (autoscaler,) = baseline.autoscalers.values()
    assert autoscaler.spec.metrics[0].target.amount == recipes.baseline_target(workload)


def test_the_examples_are_what_the_recipes_write_and_validate_as_one_set() -> None:
    for recipe in RECIPES:
        committed = (ROOT / "examples" / "recommended" / f"{recipe}.yaml").read_text()
        assert committed == recipes.example(recipe)
    result = load_paths([ROOT / "examples"])
    assert not result.issues, [str(issue) for issue in result.issues]
    assert {key for key in result.specs.autoscalers if "recommended" in str(key)}
