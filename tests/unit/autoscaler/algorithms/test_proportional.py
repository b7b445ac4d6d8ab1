"""The proportional algorithm, rule by rule (docs/algorithm.md tells the same examples in words)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.algorithms import proportional
from autoscaler.algorithms.proportional import (
    clamp,
    combine,
    decide,
    effective_rules,
    rate_limit,
    replicas_changed_in_period,
    replicas_for_metric,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    within_tolerance,
)
from autoscaler.algorithms.types import (
    Decision,
    History,
    MetricInput,
    MetricResult,
    Recommendation,
    ScaleEvent,
)
from autoscaler.api.horizontalautoscaler import (
    Behavior,
    Fallback,
    HorizontalAutoscalerSpec,
    MetricTarget,
    ScalingRules,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_AMOUNT_FIELD = {
    "Value": "value",
    "AverageValue": "averageValue",
    "Utilization": "averageUtilization",
}


def target(kind: str = "AverageValue", amount: float = 1) -> MetricTarget:
    return MetricTarget.model_validate({"type": kind, _AMOUNT_FIELD[kind]: amount})


def metric(
    value: float | None,
    kind: str = "AverageValue",
    amount: float = 1,
    *,
    name: str = "q/queue_length",
    error: str | None = None,
    failures: int = 0,
) -> MetricInput:
    return MetricInput(name, target(kind, amount), value, error, failures)


def failed(name: str = "broken/signal", error: str = "timeout", failures: int = 1) -> MetricInput:
    return metric(None, name=name, error=error, failures=failures)


def make_spec(
    min_replicas: int = 1,
    max_replicas: int = 100,
    behavior: dict[str, Any] | None = None,
    fallback: dict[str, Any] | None = None,
) -> HorizontalAutoscalerSpec:
    doc: dict[str, Any] = {
        "scaleTargetRef": {"name": "workers"},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {"producer": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": 1}}
        ],
    }
    if behavior is not None:
        doc["behavior"] = behavior
    if fallback is not None:
        doc["fallback"] = fallback
    return HorizontalAutoscalerSpec.model_validate(doc)


def rules(doc: dict[str, Any]) -> ScalingRules:
    return ScalingRules.model_validate(doc)


def recs(*pairs: tuple[float, int]) -> tuple[Recommendation, ...]:
    """Recommendations given as (seconds ago, replicas)."""
    return tuple(Recommendation(NOW - ago, replicas) for ago, replicas in pairs)


def events(*pairs: tuple[float, int]) -> tuple[ScaleEvent, ...]:
    """Scale events given as (seconds ago, signed change)."""
    return tuple(ScaleEvent(NOW - ago, change) for ago, change in pairs)


def condition(decision: Decision, type_: str) -> tuple[str, str]:
    found = next(c for c in decision.conditions if c.type == type_)
    return found.status, found.reason


# Policies that never bound anything, to look at one rule at a time.
UNLIMITED = {
    "scaleUp": {"policies": [{"type": "Pods", "value": 100000, "periodSeconds": 1}]},
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
    },
}


# ------------------------------------------------------------------------- 1. one metric


@pytest.mark.parametrize(
    ("kind", "amount", "value", "current", "expected"),
    [
        ("Value", 100, 200, 4, 8),
        ("Value", 100, 50, 4, 2),
        ("Value", 10, 13, 3, 4),
        ("Value", 10, 0, 5, 0),
        ("AverageValue", 4, 40, 1, 10),
        ("AverageValue", 4, 8, 10, 2),
        ("AverageValue", 5, 21, 2, 5),
        ("Utilization", 70, 140, 3, 6),
        ("Utilization", 80, 20, 8, 2),
        ("Value", 0.3, 0.1, 9, 3),
        ("Value", 10, 1e308, 2, proportional.MAX_RECOMMENDATION),
    ],
    ids=[
        "Value: twice the target doubles the current count",
        "Value: half the target halves the current count",
        "Value: a fraction of a replica rounds up",
        "Value: zero asks for zero (minReplicas applies later)",
        "AverageValue: the total over the per-replica target",
        "AverageValue: scales down to the total over the target",
        "AverageValue: does not depend on the current count",
        "Utilization: percent over target percent scales the current count",
        "Utilization: low use scales down",
        "float noise does not add a replica",
        "a huge value is capped at the int32 range",
    ],
)
def test_a_metric_asks_for_replicas_proportional_to_its_target(
    kind: str, amount: float, value: float, current: int, expected: int
) -> None:
    result = replicas_for_metric(metric(value, kind, amount), current)
    assert result.recommendation == expected
    assert result.reason == "Computed"
    assert (result.target_type, result.target, result.value) == (kind, amount, value)


@pytest.mark.parametrize(
    ("kind", "amount", "value", "current", "up", "down", "expected", "reason"),
    [
        ("AverageValue", 1, 11, 10, 0.1, 0.1, 10, "WithinTolerance"),
        ("AverageValue", 1, 11.1, 10, 0.1, 0.1, 12, "Computed"),
        ("AverageValue", 1, 9, 10, 0.1, 0.1, 10, "WithinTolerance"),
        ("AverageValue", 1, 8.9, 10, 0.1, 0.1, 9, "Computed"),
        ("Value", 100, 108, 4, 0.1, 0.1, 4, "WithinTolerance"),
        ("Utilization", 70, 75, 4, 0.1, 0.1, 4, "WithinTolerance"),
        ("AverageValue", 1, 14, 10, 0.5, 0.1, 10, "WithinTolerance"),
        ("AverageValue", 1, 16, 10, 0.5, 0.1, 16, "Computed"),
        ("AverageValue", 1, 9, 10, 0.5, 0.0, 9, "Computed"),
        ("AverageValue", 1, 10.5, 10, 0.0, 0.5, 11, "Computed"),
        ("AverageValue", 1, 6, 10, 0.0, 0.5, 10, "WithinTolerance"),
        ("AverageValue", 1, 10, 10, 0.0, 0.0, 10, "WithinTolerance"),
    ],
    ids=[
        "up: exactly 10 % above the target holds",
        "up: just beyond 10 % scales up",
        "down: exactly 10 % below the target holds",
        "down: just beyond 10 % scales down",
        "Value targets use the same tolerance",
        "Utilization targets use the same tolerance",
        "custom scale-up tolerance 0.5 holds 40 % above",
        "custom scale-up tolerance 0.5 scales at 60 % above",
        "scale-down tolerance 0 scales down at 10 % below while up stays 0.5",
        "scale-up tolerance 0 scales up at 5 % above",
        "scale-down tolerance 0.5 holds 40 % below",
        "tolerance 0 still holds exactly on target",
    ],
)
def test_a_ratio_within_the_tolerance_of_its_direction_keeps_the_current_count(
    kind: str,
    amount: float,
    value: float,
    current: int,
    up: float,
    down: float,
    expected: int,
    reason: str,
) -> None:
    result = replicas_for_metric(
        metric(value, kind, amount), current, up_tolerance=up, down_tolerance=down
    )
    assert (result.recommendation, result.reason) == (expected, reason)


@pytest.mark.parametrize(
    ("ratio", "up", "down", "within"),
    [
        (1.1, 0.1, 0.1, True),
        (0.9, 0.1, 0.1, True),
        (1.1000001, 0.1, 0.1, False),
        (0.5, 0.1, 0.5, True),
    ],
    ids=["upper edge", "lower edge", "beyond the upper edge", "a wide scale-down tolerance"],
)
def test_the_tolerance_band_includes_its_edges(
    ratio: float, up: float, down: float, within: bool
) -> None:
    assert within_tolerance(ratio, up, down) is within


@pytest.mark.parametrize(
    ("kind", "amount", "value", "expected"),
    [
        ("Value", 10, 5, 1),
        ("Value", 10, 25, 3),
        ("Value", 10, 10.5, 2),
        ("Value", 10, 0, 0),
        ("AverageValue", 4, 40, 10),
        ("AverageValue", 4, 0, 0),
        ("Utilization", 50, 150, 3),
    ],
    ids=[
        "Value: any value above zero asks for one replica at least",
        "Value: from a base of one replica",
        "Value: no tolerance at zero",
        "Value: zero stays at zero",
        "AverageValue: the total over the target",
        "AverageValue: zero stays at zero",
        "Utilization: from a base of one replica",
    ],
)
def test_a_metric_scales_from_zero_replicas(
    kind: str, amount: float, value: float, expected: int
) -> None:
    result = replicas_for_metric(metric(value, kind, amount), 0)
    assert (result.recommendation, result.reason) == (expected, "Computed")


@pytest.mark.parametrize(
    ("value", "error", "expected_error", "shown"),
    [
        (None, "connection refused", "connection refused", None),
        (None, None, "no value", None),
        (math.nan, None, "NaN", None),
        (math.inf, None, "infinite", None),
        (-math.inf, None, "infinite", None),
        (-3.0, None, "metric value -3 is negative", -3.0),
    ],
    ids=[
        "a failed read",
        "a missing value",
        "NaN",
        "infinity",
        "minus infinity",
        "a negative value",
    ],
)
def test_a_failed_or_invalid_value_has_no_recommendation(
    value: float | None, error: str | None, expected_error: str, shown: float | None
) -> None:
    result = replicas_for_metric(metric(value, error=error, failures=1), 4)
    assert (result.recommendation, result.reason) == (None, "Failed")
    assert result.error is not None and expected_error in result.error
    assert result.value == shown


@pytest.mark.parametrize(
    ("value", "failures", "fallback", "expected", "reason"),
    [
        (None, 2, Fallback(failure_threshold=3, replicas=7), None, "Failed"),
        (None, 3, Fallback(failure_threshold=3, replicas=7), 7, "Fallback"),
        (None, 9, Fallback(failure_threshold=3, replicas=7), 7, "Fallback"),
        (None, 1, Fallback(failure_threshold=1, replicas=0), 0, "Fallback"),
        (None, 50, None, None, "Failed"),
        (math.nan, 3, Fallback(failure_threshold=3, replicas=7), 7, "Fallback"),
        (12.0, 5, Fallback(failure_threshold=3, replicas=7), 12, "Computed"),
    ],
    ids=[
        "not before the threshold",
        "at the threshold",
        "after the threshold",
        "threshold 1 and fallback to zero",
        "never without a fallback",
        "invalid values count as failures",
        "a good value ignores the fallback",
    ],
)
def test_a_metric_that_keeps_failing_asks_for_the_fallback_replicas(
    value: float | None, failures: int, fallback: Fallback | None, expected: int | None, reason: str
) -> None:
    result = replicas_for_metric(metric(value, failures=failures), 4, fallback=fallback)
    assert (result.recommendation, result.reason) == (expected, reason)


# ------------------------------------------------------------------------- 2. combine


def _result(recommendation: int | None, name: str = "m") -> MetricResult:
    reason = "Failed" if recommendation is None else "Computed"
    return MetricResult(name, None, "AverageValue", 1, recommendation, None, reason)


@pytest.mark.parametrize(
    ("recommendations", "current", "expected", "winner", "blocks"),
    [
        ([3, 9, 5], 4, 9, "b", False),
        ([9, 9], 4, 9, "a", False),
        ([None, None], 4, None, None, False),
        ([2, None], 4, 2, "a", True),
        ([None, 6], 4, 6, "b", False),
        ([None, 4], 4, 4, "b", False),
    ],
    ids=[
        "the highest recommendation wins",
        "the first metric wins a tie",
        "all failed: no recommendation",
        "some failed and the rest ask for fewer: blocks the scale-down",
        "some failed and the rest ask for more: scales up",
        "some failed and the rest ask for the same: no block",
    ],
)
def test_metrics_combine_to_the_highest_valid_recommendation(
    recommendations: list[int | None],
    current: int,
    expected: int | None,
    winner: str | None,
    blocks: bool,
) -> None:
    results = [_result(r, name) for r, name in zip(recommendations, "abc", strict=False)]
    combined = combine(results, current)
    assert combined.recommendation == expected
    assert (combined.winner.name if combined.winner else None) == winner
    assert combined.blocks_scale_down is blocks


def test_decide_scales_to_the_highest_of_several_metrics() -> None:
    inputs = [
        metric(40, "AverageValue", 4, name="q/queue_length"),
        metric(300, "Value", 100, name="lag/seconds"),
        metric(35, "Utilization", 70, name="cpu/utilization"),
    ]
    decision = decide(make_spec(behavior=UNLIMITED), 5, inputs, History(), NOW)
    assert [m.recommendation for m in decision.metrics] == [10, 15, 3]
    assert decision.desired_replicas == 15
    assert decision.steps[0].message == (
        "metric lag/seconds=300 target Value 100 → 15 replicas (highest of 3 metrics)"
    )


@pytest.mark.parametrize(
    ("inputs", "current", "reason", "message_part"),
    [
        (
            [failed("a/x", "timeout"), failed("b/y", "refused")],
            4,
            "FailedGetMetrics",
            "a/x: timeout",
        ),
        ([metric(math.nan, name="a/x"), failed("b/y")], 4, "InvalidMetrics", "NaN"),
        ([], 4, "FailedGetMetrics", "no metrics"),
    ],
    ids=["reads failed", "the first value is invalid", "no metrics at all"],
)
def test_when_every_metric_failed_nothing_changes_and_nothing_is_recorded(
    inputs: list[MetricInput], current: int, reason: str, message_part: str
) -> None:
    history = History(recs((30, 9)), events((5, 1)))
    decision = decide(make_spec(), current, inputs, history, NOW)
    assert decision.desired_replicas == current
    assert decision.history == history
    assert condition(decision, "ScalingActive") == ("False", reason)
    active = next(c for c in decision.conditions if c.type == "ScalingActive")
    assert message_part in active.message
    assert [s.rule for s in decision.steps] == ["metrics"]


def test_when_every_metric_failed_the_message_names_the_first_error() -> None:
    decision = decide(make_spec(), 4, [failed("a/x", "timeout"), failed("b/y")], History(), NOW)
    assert decision.reasons == ["2 of 2 metrics failed (a/x: timeout): holds 4"]


def test_partial_failure_never_scales_down() -> None:
    history = History(recs((30, 10)))
    inputs = [metric(2, name="q/queue_length"), failed("b/y", "timeout")]
    decision = decide(make_spec(behavior=UNLIMITED), 10, inputs, history, NOW)
    assert decision.desired_replicas == 10
    assert [(s.rule, s.before, s.after) for s in decision.steps] == [
        ("metrics", 10, 2),
        ("partialFailure", 2, 10),
    ]
    assert (
        decision.steps[-1].message == "1 of 2 metrics failed (b/y: timeout): holds 10 instead of 2"
    )
    assert condition(decision, "ScalingActive") == ("False", "FailedGetMetrics")
    assert decision.history == history  # no recommendation recorded, as the HPA


def test_partial_failure_scales_up_on_the_valid_metrics() -> None:
    inputs = [metric(20, name="q/queue_length"), failed("b/y", "timeout")]
    decision = decide(make_spec(), 10, inputs, History(), NOW)
    assert decision.desired_replicas == 20
    assert condition(decision, "ScalingActive") == ("True", "ValidMetricFound")
    assert decision.steps[0].message == (
        "metric q/queue_length=20 target AverageValue 1 → 20 replicas; "
        "1 of 2 metrics failed, scaling on the valid ones"
    )
    assert decision.history.recommendations == recs((0, 20))


@pytest.mark.parametrize(
    ("failures", "desired", "active"),
    [(2, 10, ("False", "FailedGetMetrics")), (3, 3, ("True", "ValidMetricFound"))],
    ids=[
        "before the threshold the failure holds the count",
        "at the threshold the fallback counts",
    ],
)
def test_a_fallback_counts_as_a_valid_metric(
    failures: int, desired: int, active: tuple[str, str]
) -> None:
    spec = make_spec(behavior=UNLIMITED, fallback={"failureThreshold": 3, "replicas": 3})
    decision = decide(spec, 10, [failed("q/queue_length", failures=failures)], History(), NOW)
    assert decision.desired_replicas == desired
    assert condition(decision, "ScalingActive") == active


def test_a_fallback_step_says_how_often_the_metric_failed() -> None:
    spec = make_spec(behavior=UNLIMITED, fallback={"failureThreshold": 3, "replicas": 3})
    decision = decide(spec, 10, [failed("q/queue_length", failures=4)], History(), NOW)
    assert (decision.steps[0].rule, decision.steps[0].message) == (
        "fallback",
        "metric q/queue_length failed 4 times (threshold 3) → fallback 3 replicas",
    )


# ------------------------------------------------------------------------- 3. stabilization


@pytest.mark.parametrize(
    ("recommendation", "current", "recorded", "up_window", "down_window", "expected"),
    [
        (10, 4, (), 0, 300, 10),
        (2, 10, ((100, 8),), 0, 300, 8),
        (2, 10, ((100, 12),), 0, 300, 10),
        (2, 10, ((301, 8),), 0, 300, 8),
        (2, 10, ((400, 8), (301, 3)), 0, 300, 3),
        (2, 10, ((300, 8),), 0, 300, 8),
        (2, 10, ((1, 8),), 0, 0, 2),
        (10, 4, ((30, 6),), 60, 300, 6),
        (10, 4, ((30, 3),), 60, 300, 4),
        (10, 4, ((90, 3), (61, 12)), 60, 300, 10),
        (10, 4, ((30, 6), (20, 7), (10, 12)), 60, 300, 6),
        (6, 10, ((200, 9), (100, 7)), 0, 300, 9),
    ],
    ids=[
        "no history and no scale-up window follows the recommendation",
        "scale-down window keeps the highest recent recommendation",
        "scale-down window holds the current count when a recent one was higher",
        "a record from before the scale-down window counts while still in force",
        "a record superseded before the scale-down window started is ignored",
        "a record at the window edge is in force for the whole window",
        "a zero scale-down window follows at once",
        "scale-up window keeps the lowest recent recommendation",
        "scale-up window holds the current count when a recent one was lower",
        "a record superseded before the scale-up window started is ignored",
        "scale-up window takes the minimum of several records",
        "scale-down window takes the maximum of several records",
    ],
)
def test_stabilization_keeps_the_result_within_the_recent_recommendations(
    recommendation: int,
    current: int,
    recorded: tuple[tuple[float, int], ...],
    up_window: int,
    down_window: int,
    expected: int,
) -> None:
    result = stabilize(recommendation, current, recs(*recorded), up_window, down_window, NOW)
    assert result.replicas == expected


def test_stabilization_records_the_new_recommendation_and_prunes_records_outside_both_windows() -> (
    None
):
    recorded = recs((400, 5), (300, 6), (200, 7), (30, 8))
    result = stabilize(3, 10, recorded, 60, 300, NOW)
    # (300, 6) is still in force at the start of the 300 s window; older ones are dropped.
    assert result.recommendations == recs((300, 6), (200, 7), (30, 8), (0, 3))
    assert (result.up_recommendation, result.down_recommendation) == (3, 8)


def test_decide_explains_a_held_scale_down() -> None:
    history = History(recs((100, 10)))
    decision = decide(make_spec(), 10, [metric(8, "AverageValue", 4)], history, NOW)
    assert decision.desired_replicas == 10
    assert decision.reasons == [
        "metric q/queue_length=8 target AverageValue 4 → 2 replicas",
        "scale-down stabilization window 300s holds 10 "
        "(highest recommendation since 23:55:00Z was 10)",
    ]
    assert condition(decision, "AbleToScale") == ("True", "ScaleDownStabilized")
    assert decision.history.recommendations == recs((100, 10), (0, 2))


def test_decide_explains_a_held_scale_up() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 60}}
    history = History(recs((30, 6)))
    decision = decide(make_spec(behavior=behavior), 4, [metric(10)], history, NOW)
    assert decision.desired_replicas == 6
    assert decision.steps[1].message == (
        "scale-up stabilization window 60s holds 6 (lowest recommendation since 23:59:00Z was 6)"
    )


def test_a_scale_down_follows_once_the_window_has_passed() -> None:
    history = History(recs((400, 10), (350, 2)))
    decision = decide(make_spec(), 10, [metric(8, "AverageValue", 4)], history, NOW)
    assert decision.desired_replicas == 2
    assert decision.history.recommendations == recs((350, 2), (0, 2))


def test_a_recommendation_stays_in_force_until_replaced_even_without_new_evaluations() -> None:
    # The loop evaluates when a signal changes: an unchanged signal recorded once at -301 s
    # still recommends 10 now, so the 300 s window holds a scale-down.
    history = History(recs((301, 10)))
    decision = decide(make_spec(), 10, [metric(8, "AverageValue", 4)], history, NOW)
    assert decision.desired_replicas == 10
    assert decision.steps[-1].rule == "stabilization"


# ------------------------------------------------------------------------- 4. rate policies


@pytest.mark.parametrize(
    ("period", "recorded", "expected"),
    [
        (60, ((30, 3), (10, -1), (5, 2)), (5, 1)),
        (60, ((61, 3), (60, 4), (59, 5)), (5, 0)),
        (15, (), (0, 0)),
    ],
    ids=[
        "sums additions and removals apart",
        "only events strictly inside the period",
        "no events",
    ],
)
def test_replica_changes_are_counted_within_the_period(
    period: int, recorded: tuple[tuple[float, int], ...], expected: tuple[int, int]
) -> None:
    assert replicas_changed_in_period(events(*recorded), period, NOW) == expected


def _p(kind: str, value: int, period: int) -> dict[str, Any]:
    return {"type": kind, "value": value, "periodSeconds": period}


@pytest.mark.parametrize(
    ("policies", "select", "current", "recorded", "expected"),
    [
        ([_p("Pods", 4, 60)], "Max", 10, (), 14),
        ([_p("Percent", 50, 60)], "Max", 5, (), 8),
        ([_p("Percent", 10, 60)], "Max", 50, (), 55),
        ([_p("Pods", 4, 60)], "Max", 10, ((30, 3),), 11),
        ([_p("Pods", 4, 60)], "Max", 10, ((30, -2),), 16),
        ([_p("Pods", 4, 60)], "Max", 10, ((61, 3),), 14),
        ([_p("Pods", 4, 60)], "Max", 10, ((60, 3),), 14),
        ([_p("Pods", 4, 15), _p("Percent", 100, 60)], "Max", 10, ((30, 5),), 14),
        ([_p("Pods", 4, 60), _p("Percent", 100, 60)], "Max", 10, (), 20),
        ([_p("Pods", 4, 60), _p("Percent", 100, 60)], "Min", 10, (), 14),
        ([_p("Pods", 4, 60), _p("Percent", 100, 60)], "Disabled", 10, (), 10),
    ],
    ids=[
        "Pods adds its value",
        "Percent rounds up",
        "Percent is exact in integers (50 → 55 for 10 %)",
        "scale-ups inside the period lower the period start",
        "scale-downs inside the period raise the period start",
        "events before the period are ignored",
        "an event exactly at the period start is ignored",
        "each policy counts its own period",
        "selectPolicy Max takes the largest limit",
        "selectPolicy Min takes the smallest limit",
        "selectPolicy Disabled allows no change",
    ],
)
def test_scale_up_policies_limit_the_replicas_added_per_period(
    policies: list[dict[str, Any]],
    select: str,
    current: int,
    recorded: tuple[tuple[float, int], ...],
    expected: int,
) -> None:
    up = rules({"selectPolicy": select, "policies": policies})
    assert scale_up_limit(current, events(*recorded), up, NOW).limit == expected


@pytest.mark.parametrize(
    ("policies", "select", "current", "recorded", "expected"),
    [
        ([_p("Pods", 3, 60)], "Max", 10, (), 7),
        ([_p("Percent", 25, 60)], "Max", 10, (), 7),
        ([_p("Percent", 80, 60)], "Max", 10, (), 2),
        ([_p("Percent", 100, 60)], "Max", 10, (), 0),
        ([_p("Pods", 3, 60)], "Max", 10, ((30, -2),), 9),
        ([_p("Pods", 3, 60)], "Max", 10, ((30, 4),), 3),
        ([_p("Pods", 3, 60)], "Max", 10, ((90, -2),), 7),
        ([_p("Pods", 2, 60), _p("Percent", 50, 60)], "Max", 10, (), 5),
        ([_p("Pods", 2, 60), _p("Percent", 50, 60)], "Min", 10, (), 8),
        ([_p("Pods", 2, 60)], "Disabled", 10, (), 10),
    ],
    ids=[
        "Pods subtracts its value",
        "Percent truncates",
        "Percent is exact in integers (10 → 2 for 80 %)",
        "100 % allows zero",
        "scale-downs inside the period count from the period start",
        "scale-ups inside the period lower the period start",
        "events before the period are ignored",
        "selectPolicy Max takes the largest change (the smallest count)",
        "selectPolicy Min takes the smallest change (the largest count)",
        "selectPolicy Disabled allows no change",
    ],
)
def test_scale_down_policies_limit_the_replicas_removed_per_period(
    policies: list[dict[str, Any]],
    select: str,
    current: int,
    recorded: tuple[tuple[float, int], ...],
    expected: int,
) -> None:
    down = rules({"selectPolicy": select, "policies": policies})
    assert scale_down_limit(current, events(*recorded), down, NOW).limit == expected


_DEFAULT_UP, _DEFAULT_DOWN = effective_rules(Behavior())


@pytest.mark.parametrize(
    ("desired", "current", "bounds", "up", "down", "recorded", "expected", "reason", "disabled"),
    [
        (12, 10, (1, 100), {}, {}, (), 12, "DesiredWithinRange", False),
        (30, 10, (1, 100), {}, {}, (), 20, "ScaleUpLimit", False),
        (30, 10, (1, 15), {}, {}, (), 15, "TooManyReplicas", False),
        (30, 10, (1, 20), {}, {}, (), 20, "TooManyReplicas", False),
        (
            30,
            10,
            (1, 100),
            {"policies": [_p("Pods", 2, 60)]},
            {},
            ((10, 5),),
            10,
            "ScaleUpLimit",
            False,
        ),
        (2, 10, (1, 100), {}, {"policies": [_p("Pods", 3, 60)]}, (), 7, "ScaleDownLimit", False),
        (2, 10, (5, 100), {}, {}, (), 5, "TooFewReplicas", False),
        (12, 10, (1, 100), {"selectPolicy": "Disabled"}, {}, (), 10, "ScaleUpLimit", True),
        (2, 10, (1, 100), {}, {"selectPolicy": "Disabled"}, (), 10, "ScaleDownLimit", True),
        (10, 10, (1, 100), {"selectPolicy": "Disabled"}, {}, (), 10, "DesiredWithinRange", False),
    ],
    ids=[
        "a scale-up within the policies passes",
        "a scale-up beyond the policies is limited",
        "maxReplicas is the tighter bound",
        "maxReplicas equal to the policy limit reports TooManyReplicas",
        "a scale-up never goes below the current count after a burst",
        "a scale-down beyond the policies is limited",
        "minReplicas is the tighter bound",
        "a disabled scale-up holds the current count",
        "a disabled scale-down holds the current count",
        "no change passes whatever the policies",
    ],
)
def test_rate_limits_bound_the_change_like_the_hpa(
    desired: int,
    current: int,
    bounds: tuple[int, int],
    up: dict[str, Any],
    down: dict[str, Any],
    recorded: tuple[tuple[float, int], ...],
    expected: int,
    reason: str,
    disabled: bool,
) -> None:
    up_rules, down_rules = effective_rules(
        Behavior.model_validate({"scaleUp": up, "scaleDown": down})
    )
    limited = rate_limit(
        desired, current, bounds[0], bounds[1], up_rules, down_rules, events(*recorded), NOW
    )
    assert (limited.replicas, limited.reason, limited.disabled) == (expected, reason, disabled)


@pytest.mark.parametrize(
    ("current", "value", "expected", "message"),
    [
        (1, 10, 5, "scale-up policy Pods 4/15s limits 10 → 5"),
        (10, 50, 20, "scale-up policy Percent 100%/15s limits 50 → 20"),
        (3, 4, 4, None),
        (10, 1, 1, None),
    ],
    ids=[
        "1 → 5 in one step: Pods 4 beats 100 %",
        "10 → 20 in one step: 100 % beats Pods 4",
        "a small scale-up passes",
        "without history a scale-down may remove everything at once",
    ],
)
def test_default_behaviour_follows_the_hpa(
    current: int, value: float, expected: int, message: str | None
) -> None:
    decision = decide(make_spec(), current, [metric(value)], History(), NOW)
    assert decision.desired_replicas == expected
    if message is not None:
        assert decision.steps[-1].message == message
        assert condition(decision, "ScalingLimited") == ("True", "ScaleUpLimit")


def test_a_policy_counts_from_the_period_start_derived_from_recorded_events() -> None:
    behavior = {"scaleUp": {"policies": [_p("Pods", 4, 60)]}}
    history = History(scale_events=events((30, 3), (90, 50)))
    decision = decide(make_spec(behavior=behavior), 10, [metric(30)], history, NOW)
    assert decision.desired_replicas == 11
    assert decision.reasons[-1] == "scale-up policy Pods 4/60s limits 30 → 11 (period start 7)"


@pytest.mark.parametrize(
    ("behavior", "current", "value", "expected", "rule"),
    [
        ({"scaleUp": {"selectPolicy": "Disabled"}}, 4, 10, 4, "policy"),
        (
            {"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}},
            10,
            2,
            10,
            "policy",
        ),
    ],
    ids=["scale-up disabled", "scale-down disabled"],
)
def test_a_disabled_direction_holds_and_says_so(
    behavior: dict[str, Any], current: int, value: float, expected: int, rule: str
) -> None:
    decision = decide(make_spec(behavior=behavior), current, [metric(value)], History(), NOW)
    assert decision.desired_replicas == expected
    assert decision.steps[-1].rule == rule
    assert "disabled (selectPolicy Disabled)" in decision.steps[-1].message
    assert condition(decision, "AbleToScale") == ("False", "ScalingDisabled")
    assert decision.history.scale_events == ()


# ------------------------------------------------------------------------- 5. clamp


@pytest.mark.parametrize(
    ("desired", "expected"),
    [(0, (2, "TooFewReplicas")), (5, (5, "DesiredWithinRange")), (11, (10, "TooManyReplicas"))],
    ids=["below the minimum", "within", "above the maximum"],
)
def test_clamp_keeps_the_count_within_min_and_max(desired: int, expected: tuple[int, str]) -> None:
    assert clamp(desired, 2, 10) == expected


@pytest.mark.parametrize(
    ("bounds", "current", "inputs", "expected", "reason", "message"),
    [
        ((1, 15), 10, [metric(200)], 15, "TooManyReplicas", "maxReplicas 15 limits 200 → 15"),
        ((3, 100), 10, [metric(1)], 3, "TooFewReplicas", "minReplicas 3 limits 1 → 3"),
        ((2, 10), 0, [metric(0)], 2, "TooFewReplicas", "minReplicas 2 limits 0 → 2"),
        ((1, 10), 20, [metric(20)], 10, "TooManyReplicas", "maxReplicas 10 limits 20 → 10"),
        ((1, 10), 20, [failed()], 10, "TooManyReplicas", "maxReplicas 10 limits 20 → 10"),
        (
            (1, 10),
            20,
            [metric(1), failed()],
            10,
            "TooManyReplicas",
            "maxReplicas 10 limits 20 → 10",
        ),
    ],
    ids=[
        "maxReplicas caps a recommendation",
        "minReplicas raises a recommendation",
        "zero replicas below minReplicas go to the minimum",
        "a current count above maxReplicas comes down to the maximum",
        "even when every metric failed",
        "even when a failure holds a scale-down",
    ],
)
def test_min_and_max_replicas_apply_last(
    bounds: tuple[int, int],
    current: int,
    inputs: list[MetricInput],
    expected: int,
    reason: str,
    message: str,
) -> None:
    spec = make_spec(bounds[0], bounds[1], behavior=UNLIMITED)
    decision = decide(spec, current, inputs, History(), NOW)
    assert decision.desired_replicas == expected
    assert (decision.steps[-1].rule, decision.steps[-1].message) == ("minMax", message)
    assert condition(decision, "ScalingLimited") == ("True", reason)
    assert decision.history.scale_events == (ScaleEvent(NOW, expected - current),)


# ------------------------------------------------------------------------- 6. history


def test_a_change_is_recorded_as_a_scale_event_and_old_events_are_pruned() -> None:
    behavior = {"scaleUp": {"policies": [_p("Pods", 100, 60)]}}  # longest period: 60 s
    history = History(scale_events=events((61, 1), (60, 1), (59, 2)))
    decision = decide(make_spec(behavior=behavior), 4, [metric(8)], history, NOW)
    assert decision.desired_replicas == 8
    assert decision.history.scale_events == events((59, 2), (0, 4))


def test_no_change_records_no_scale_event() -> None:
    decision = decide(make_spec(), 10, [metric(10)], History(), NOW)
    assert not decision.changed
    assert decision.history.scale_events == ()
    assert decision.history.recommendations == recs((0, 10))


# ------------------------------------------------------------------------- behaviour defaults


@pytest.mark.parametrize(
    ("behavior", "up", "down"),
    [
        (
            None,
            (0, "Max", [("Pods", 4, 15), ("Percent", 100, 15)], 0.1),
            (300, "Max", [("Percent", 100, 15)], 0.1),
        ),
        (
            {"scaleUp": {"tolerance": 0.5}},
            (0, "Max", [("Pods", 4, 15), ("Percent", 100, 15)], 0.5),
            (300, "Max", [("Percent", 100, 15)], 0.1),
        ),
        (
            {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min"}},
            (0, "Max", [("Pods", 4, 15), ("Percent", 100, 15)], 0.1),
            (60, "Min", [("Percent", 100, 15)], 0.1),
        ),
        (
            {"scaleUp": {"policies": [_p("Pods", 1, 60)]}, "scaleDown": {"tolerance": 0}},
            (0, "Max", [("Pods", 1, 60)], 0.1),
            (300, "Max", [("Percent", 100, 15)], 0.0),
        ),
    ],
    ids=[
        "no behaviour: the HPA defaults",
        "a tolerance alone keeps the default window and policies",
        "a window and selectPolicy alone keep the default policies",
        "policies replace the defaults entirely",
    ],
)
def test_behaviour_defaults_are_filled_field_by_field(
    behavior: dict[str, Any] | None, up: tuple[Any, ...], down: tuple[Any, ...]
) -> None:
    parsed = None if behavior is None else Behavior.model_validate(behavior)
    for filled, expected in zip(effective_rules(parsed), (up, down), strict=True):
        assert filled.policies is not None
        assert (
            filled.stabilization_window_seconds,
            filled.select_policy,
            [(p.type, p.value, p.period_seconds) for p in filled.policies],
            filled.tolerance,
        ) == expected


def test_a_custom_tolerance_in_the_spec_reaches_the_metric() -> None:
    spec = make_spec(behavior={"scaleUp": {"tolerance": 0.5}})
    decision = decide(spec, 10, [metric(14)], History(), NOW)
    assert decision.desired_replicas == 10
    assert decision.metrics[0].reason == "WithinTolerance"
    assert decision.steps[0].rule == "tolerance"
    assert decision.steps[0].message == (
        "metric q/queue_length=14 target AverageValue 1: ratio 1.400 within tolerance → holds 10"
    )


# ------------------------------------------------------------------------- 7. conditions


@pytest.mark.parametrize(
    ("spec", "current", "inputs", "history", "expected"),
    [
        (
            make_spec(),
            4,
            [metric(6)],
            History(),
            [
                ("True", "SucceededRescale"),
                ("True", "ValidMetricFound"),
                ("False", "DesiredWithinRange"),
            ],
        ),
        (
            make_spec(),
            4,
            [metric(4)],
            History(),
            [
                ("True", "ReadyForNewScale"),
                ("True", "ValidMetricFound"),
                ("False", "DesiredWithinRange"),
            ],
        ),
        (
            make_spec(),
            10,
            [metric(2)],
            History(recs((60, 10))),
            [
                ("True", "ScaleDownStabilized"),
                ("True", "ValidMetricFound"),
                ("False", "DesiredWithinRange"),
            ],
        ),
        (
            make_spec(max_replicas=5),
            4,
            [metric(9)],
            History(),
            [
                ("True", "SucceededRescale"),
                ("True", "ValidMetricFound"),
                ("True", "TooManyReplicas"),
            ],
        ),
        (
            make_spec(behavior={"scaleUp": {"selectPolicy": "Disabled"}}),
            4,
            [metric(9)],
            History(),
            [("False", "ScalingDisabled"), ("True", "ValidMetricFound"), ("True", "ScaleUpLimit")],
        ),
        (
            make_spec(
                behavior={
                    "scaleDown": {"policies": [_p("Pods", 1, 60)], "stabilizationWindowSeconds": 0}
                }
            ),
            4,
            [metric(1)],
            History(),
            [
                ("True", "SucceededRescale"),
                ("True", "ValidMetricFound"),
                ("True", "ScaleDownLimit"),
            ],
        ),
        (
            make_spec(),
            4,
            [failed()],
            History(),
            [
                ("True", "ReadyForNewScale"),
                ("False", "FailedGetMetrics"),
                ("False", "DesiredWithinRange"),
            ],
        ),
    ],
    ids=[
        "a scale-up",
        "nothing to do",
        "a scale-down held by stabilization",
        "limited by maxReplicas",
        "scale-up disabled",
        "limited by a scale-down policy",
        "no valid metric",
    ],
)
def test_conditions_report_why_the_count_is_what_it_is(
    spec: HorizontalAutoscalerSpec,
    current: int,
    inputs: list[MetricInput],
    history: History,
    expected: list[tuple[str, str]],
) -> None:
    decision = decide(spec, current, inputs, history, NOW)
    assert [c.type for c in decision.conditions] == [
        "AbleToScale",
        "ScalingActive",
        "ScalingLimited",
    ]
    assert [(c.status, c.reason) for c in decision.conditions] == expected


def test_a_negative_current_count_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        decide(make_spec(), -1, [metric(1)], History(), NOW)


# ------------------------------------------------------------------------- properties

_policy = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Pods", "Percent"]),
        "value": st.integers(1, 200),
        "periodSeconds": st.integers(1, 600),
    }
)
_rules = st.fixed_dictionaries(
    {},
    optional={
        "stabilizationWindowSeconds": st.integers(0, 600),
        "selectPolicy": st.sampled_from(["Max", "Min", "Disabled"]),
        "policies": st.lists(_policy, min_size=1, max_size=3),
        "tolerance": st.sampled_from([0.0, 0.05, 0.1, 0.5]),
    },
)
_value = st.one_of(
    st.none(),
    st.floats(0, 1e6, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -1.0]),
)
_input = st.builds(
    lambda value, kind, amount, failures: metric(value, kind, amount, failures=failures),
    _value,
    st.sampled_from(["Value", "AverageValue", "Utilization"]),
    st.sampled_from([0.5, 1, 4, 70, 100]),
    st.integers(0, 5),
)
_history = st.builds(
    History,
    st.lists(
        st.builds(Recommendation, st.floats(NOW - 900, NOW - 0.001), st.integers(0, 200)),
        max_size=6,
    ).map(tuple),
    st.lists(
        st.builds(ScaleEvent, st.floats(NOW - 900, NOW - 0.001), st.integers(-50, 50)), max_size=6
    ).map(tuple),
)


@st.composite
def _specs(draw: st.DrawFn, with_fallback: bool) -> HorizontalAutoscalerSpec:
    low = draw(st.integers(0, 20))
    high = draw(st.integers(max(low, 1), 60))
    fallback = (
        {"failureThreshold": draw(st.integers(1, 4)), "replicas": draw(st.integers(0, 80))}
        if with_fallback
        else None
    )
    return make_spec(low, high, {"scaleUp": draw(_rules), "scaleDown": draw(_rules)}, fallback)


@settings(max_examples=300, deadline=None)
@given(
    spec=_specs(with_fallback=False),
    current=st.integers(0, 80),
    inputs=st.lists(_input, min_size=1, max_size=3),
    history=_history,
)
def test_the_result_stays_within_bounds_and_failures_never_scale_down(
    spec: HorizontalAutoscalerSpec,
    current: int,
    inputs: list[MetricInput],
    history: History,
) -> None:
    decision = decide(spec, current, inputs, history, NOW)
    assert spec.min_replicas <= decision.desired_replicas <= spec.max_replicas
    if any(m.recommendation is None for m in decision.metrics):
        assert decision.desired_replicas >= min(current, spec.max_replicas)
    _assert_steps_chain(decision)


@settings(max_examples=200, deadline=None)
@given(
    spec=_specs(with_fallback=True),
    current=st.integers(0, 80),
    inputs=st.lists(_input, min_size=1, max_size=3),
    history=_history,
)
def test_the_result_stays_within_bounds_with_a_fallback(
    spec: HorizontalAutoscalerSpec,
    current: int,
    inputs: list[MetricInput],
    history: History,
) -> None:
    decision = decide(spec, current, inputs, history, NOW)
    assert spec.min_replicas <= decision.desired_replicas <= spec.max_replicas
    _assert_steps_chain(decision)


def _assert_steps_chain(decision: Decision) -> None:
    """Each step starts where the previous one ended; the last one ends at the result."""
    steps = decision.steps
    assert steps
    assert steps[0].before == decision.current_replicas
    for previous, step in itertools.pairwise(steps):
        assert step.before == previous.after
    assert steps[-1].after == decision.desired_replicas
    change = decision.desired_replicas - decision.current_replicas
    assert (decision.history.scale_events[-1:] == (ScaleEvent(NOW, change),)) is (change != 0)
