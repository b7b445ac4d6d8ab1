"""The PID algorithm, rule by rule, and on toy plants (docs/algorithm.md, "PID")."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from autoscaler import algorithms
from autoscaler.algorithms import pid, proportional
from autoscaler.algorithms.pid import (
    MAX_DT_SECONDS,
    STALE_STATE_SECONDS,
    Windup,
    anti_windup,
    filtered_derivative,
    held_recommendation,
    metric_output,
    usage_ratio,
)
from autoscaler.algorithms.types import (
    Decision,
    History,
    MetricInput,
    PIDMetricState,
    PIDState,
    Recommendation,
)
from autoscaler.api.horizontalautoscaler import (
    Algorithm,
    HorizontalAutoscalerSpec,
    HorizontalAutoscalerStatus,
    MetricTarget,
    PIDParameters,
    PIDStatus,
)
from autoscaler.clock import FakeClock
from autoscaler.config import load_text
from autoscaler.loop import ControlLoop, _history_from_status
from tests.support import Backends, autoscaler, node_group, schedule_producer

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_AMOUNT_FIELD = {
    "Value": "value",
    "AverageValue": "averageValue",
    "Utilization": "averageUtilization",
}

# Policies and windows that never bound anything, to look at the controller alone.
UNLIMITED: dict[str, Any] = {
    "scaleUp": {"policies": [{"type": "Pods", "value": 100000, "periodSeconds": 1}]},
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
    },
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


def make_spec(
    gains: dict[str, float] | None = None,
    *,
    min_replicas: int = 1,
    max_replicas: int = 100,
    behavior: dict[str, Any] | None = None,
    fallback: dict[str, Any] | None = None,
    kind: str = "AverageValue",
    amount: float = 1,
) -> HorizontalAutoscalerSpec:
    doc: dict[str, Any] = {
        "scaleTargetRef": {"name": "workers"},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {"producer": {"name": "q"}, "target": {"type": kind, _AMOUNT_FIELD[kind]: amount}}
        ],
        "algorithm": {"type": "PID", "pid": gains or {}},
        "behavior": UNLIMITED if behavior is None else behavior,
    }
    if fallback is not None:
        doc["fallback"] = fallback
    return HorizontalAutoscalerSpec.model_validate(doc)


def gains(
    kp: float = 0.0, ki: float = 0.05, kd: float = 0.0, filter_: float = 0.0
) -> PIDParameters:
    return PIDParameters(kp=kp, ki=ki, kd=kd, derivative_filter_seconds=filter_)


def state(
    output: float,
    applied: int,
    *,
    error: float = 0.0,
    measurement: float = 0.0,
    derivative: float = 0.0,
    ago: float = 15.0,
    name: str = "q/queue_length",
) -> History:
    """A history whose PID state was written ``ago`` seconds before NOW."""
    memory = PIDMetricState(name, error, measurement, derivative, NOW - ago)
    return History(pid=PIDState(output, applied, NOW - ago, (memory,)))


# ------------------------------------------------------------------- 1–2. error and dead band


@pytest.mark.parametrize(
    ("kind", "amount", "value", "current", "expected"),
    [
        ("AverageValue", 10, 200, 10, 2.0),
        ("AverageValue", 10, 50, 0, 5.0),  # a base of one replica at zero
        ("Value", 100, 150, 7, 1.5),
        ("Utilization", 70, 35, 3, 0.5),
    ],
    ids=["average value per replica", "average value at zero", "value", "utilization"],
)
def test_the_usage_ratio_is_the_hpa_ratio(
    kind: str, amount: float, value: float, current: int, expected: float
) -> None:
    assert usage_ratio(target(kind, amount), value, current) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected_output"),
    [(10.5, 10.0), (9.2, 10.0), (13.0, 10.0 + 10 * 0.05 * 0.3 * 15)],
    ids=["just above the target", "just below the target", "beyond the tolerance"],
)
def test_a_ratio_within_the_tolerance_asks_for_the_current_count_and_integrates_nothing(
    value: float, expected_output: float
) -> None:
    out = metric_output(
        metric(value),
        value,
        PIDMetricState("q/queue_length", 0.0, 10.0, 0.0, NOW - 15),
        10.0,
        10,
        gains(),
        0.1,
        0.1,
        NOW,
    )

    assert out.output == pytest.approx(expected_output)
    assert out.within_tolerance == (expected_output == 10.0)


def test_the_first_sample_initialises_the_memory_without_a_kick() -> None:
    spec = make_spec({"kp": 1, "ki": 0.05, "kd": 10})

    decision = pid.decide(spec, 4, [metric(40)], History(), NOW)

    assert decision.desired_replicas == 4  # ratio 10, but nothing is known about its past
    assert decision.history.pid is not None
    assert decision.history.pid.metrics == (PIDMetricState("q/queue_length", 9.0, 40, 0.0, NOW, 4),)
    assert "first sample, no kick" in decision.steps[0].message


# ------------------------------------------------------------------- 3. velocity form


@pytest.mark.parametrize(
    ("kp", "ki", "previous_error", "value", "expected"),
    [
        (0.0, 0.05, 0.5, 15, 10 + 10 * 0.05 * 0.5 * 15),  # I: S × ki × e × dt
        (1.0, 0.0001, 0.5, 15, 10 + 10 * 1.0 * 0 + 10 * 0.0001 * 0.5 * 15),  # P: no change of e
        (1.0, 0.0001, 0.2, 15, 10 + 10 * 1.0 * 0.3 + 10 * 0.0001 * 0.5 * 15),  # P: Δe = 0.3
        (0.5, 0.05, 0.8, 15, 10 + 10 * 0.5 * -0.3 + 10 * 0.05 * 0.5 * 15),  # P against I
    ],
    ids=["integral", "proportional on an unchanged error", "proportional on a change", "both"],
)
def test_each_evaluation_moves_the_output_by_the_velocity_form_increment(
    kp: float, ki: float, previous_error: float, value: float, expected: float
) -> None:
    history = state(10.0, 10, error=previous_error, measurement=value)
    spec = make_spec({"kp": kp, "ki": ki})

    decision = pid.decide(spec, 10, [metric(value)], history, NOW)

    assert decision.history.pid is not None
    assert decision.history.pid.output == pytest.approx(expected)
    assert decision.desired_replicas == math.ceil(expected - 1e-9)


def test_dt_is_capped_so_a_pause_does_not_integrate_in_one_jump() -> None:
    history = state(10.0, 10, error=0.5, measurement=15, ago=500)
    spec = make_spec({"ki": 0.01})

    decision = pid.decide(spec, 10, [metric(15)], history, NOW)

    assert decision.history.pid is not None
    assert decision.history.pid.output == pytest.approx(10 + 10 * 0.01 * 0.5 * MAX_DT_SECONDS)


def test_a_memory_older_than_the_stale_limit_starts_over_without_a_kick() -> None:
    history = state(10.0, 10, error=-0.9, measurement=1, ago=STALE_STATE_SECONDS + 1)
    spec = make_spec({"kp": 1, "ki": 0.01, "kd": 50})

    decision = pid.decide(spec, 10, [metric(15)], history, NOW)

    assert decision.desired_replicas == 10
    assert decision.history.pid is not None
    assert decision.history.pid.metrics[0].derivative == 0.0


def test_an_evaluation_at_the_same_instant_changes_nothing() -> None:
    spec = make_spec({"kp": 1, "ki": 0.05})
    first = pid.decide(spec, 10, [metric(15)], state(10.0, 10, error=0.5, measurement=15), NOW)

    again = pid.decide(spec, first.desired_replicas, [metric(30)], first.history, NOW)

    assert again.history.pid is not None and first.history.pid is not None
    assert again.history.pid.metrics == first.history.pid.metrics
    assert again.desired_replicas == first.desired_replicas


# ------------------------------------------------------------------- derivative on measurement


def test_a_target_change_causes_no_derivative_kick() -> None:
    history = state(10.0, 10, error=0.0, measurement=10)
    spec = make_spec({"kp": 0.0001, "ki": 0.0001, "kd": 100})

    # Same measurement, target halved: the error doubles, the measurement did not move.
    out = metric_output(
        metric(10, amount=0.5),
        10,
        history.pid.metrics[0] if history.pid else None,
        10.0,
        10,
        spec.algorithm.pid_parameters,
        0.0,
        0.0,
        NOW,
    )

    assert out.terms.d == 0.0
    assert out.terms.p == pytest.approx(10 * 0.0001 * 1.0)
    assert out.error == pytest.approx(1.0)


def test_a_rising_measurement_adds_a_derivative_term_in_replicas() -> None:
    # 10 replicas, 1 message per replica: the queue grows by 30 in 15 s (2 per second).
    previous = PIDMetricState("q/queue_length", 0.0, 10.0, 0.0, NOW - 15)
    out = metric_output(metric(40), 40, previous, 10.0, 10, gains(kd=5), 0.1, 0.1, NOW)

    # d(value)/dt = 2 per second → 2 replicas' worth per second; kd 5 s → 10 replicas.
    assert out.state.derivative == pytest.approx(2.0)
    assert out.terms.d == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("filter_seconds", "dt", "expected"),
    [
        (0.0, 15.0, 4.0),
        (15.0, 15.0, 4.0 * (1 - math.exp(-1))),
        (30.0, 15.0, 4.0 * (1 - math.exp(-0.5))),
    ],
    ids=["no filter", "time constant equal to dt", "time constant twice dt"],
)
def test_the_derivative_is_low_pass_filtered(
    filter_seconds: float, dt: float, expected: float
) -> None:
    assert filtered_derivative(0.0, 4.0, dt, filter_seconds) == pytest.approx(expected)


def test_a_filtered_derivative_spreads_a_measurement_step_over_time() -> None:
    """A one-off step of the measurement: unfiltered, D kicks once and takes it back at once;
    filtered, the kick is smaller and decays over the filter's time constant."""

    def d_terms(filter_seconds: float) -> list[float]:
        memory = PIDMetricState("q/queue_length", 0.0, 10.0, 0.0, NOW - 15)
        terms = []
        for step, value in enumerate([25.0, 25.0, 25.0, 25.0]):
            out = metric_output(
                metric(value),
                value,
                memory,
                10.0,
                10,
                gains(kd=10, filter_=filter_seconds),
                0.0,
                0.0,
                NOW + 15 * step,
            )
            memory = out.state
            terms.append(out.terms.d)
        return terms

    raw, filtered = d_terms(0.0), d_terms(60.0)

    assert raw[0] == pytest.approx(10.0) and raw[1] == pytest.approx(-10.0)
    assert 0 < filtered[0] < raw[0] / 3
    assert all(-filtered[0] < term < 0 for term in filtered[1:])


# ------------------------------------------------------------------- 4. several metrics, failures


def test_several_metrics_apply_their_increments_to_one_output_and_the_highest_wins() -> None:
    spec = make_spec({"ki": 0.05})
    memory = (
        PIDMetricState("a", 1.0, 20.0, 0.0, NOW - 15),
        PIDMetricState("b", -0.5, 5.0, 0.0, NOW - 15),
    )
    history = History(pid=PIDState(10.0, 10, NOW - 15, memory))

    decision = pid.decide(spec, 10, [metric(20, name="a"), metric(5, name="b")], history, NOW)

    assert [m.recommendation for m in decision.metrics] == [18, 7]  # 10 ± 10 × 0.05 × e × 15
    assert decision.desired_replicas == 18
    assert "(highest of 2 metrics)" in decision.steps[0].message


def test_partial_failure_never_scales_down_as_in_proportional() -> None:
    spec = make_spec({"ki": 0.05})
    history = state(10.0, 10, error=-0.5, measurement=5)

    decision = pid.decide(
        spec, 10, [metric(5), metric(None, name="cpu", error="timeout")], history, NOW
    )

    assert decision.desired_replicas == 10
    assert [s.rule for s in decision.steps] == ["metrics", "partialFailure"]
    assert decision.history.pid is not None and decision.history.pid.output == 10.0


def test_when_every_metric_failed_the_count_and_the_pid_state_hold() -> None:
    history = state(9.5, 10, error=0.3, measurement=13)

    decision = pid.decide(make_spec(), 10, [metric(None, error="timeout")], history, NOW)

    assert decision.desired_replicas == 10
    assert decision.history.pid == history.pid


def test_a_fallback_counts_as_a_valid_metric_as_in_proportional() -> None:
    spec = make_spec(fallback={"failureThreshold": 3, "replicas": 6})

    decision = pid.decide(spec, 2, [metric(None, error="timeout", failures=3)], History(), NOW)

    assert decision.desired_replicas == 6
    assert decision.steps[0].rule == "fallback"


def test_from_zero_replicas_a_metric_asks_for_the_proportional_count() -> None:
    decision = pid.decide(make_spec(min_replicas=0), 0, [metric(7, amount=2)], History(), NOW)

    assert decision.desired_replicas == 4
    assert decision.steps[0].message.endswith("(scale from zero)")


def test_a_count_changed_from_outside_restarts_the_output_from_the_current_count() -> None:
    history = state(12.4, 12, error=0.0, measurement=8)  # an operator then set 8

    decision = pid.decide(make_spec(), 8, [metric(8)], history, NOW)

    assert decision.desired_replicas == 8
    assert decision.history.pid is not None and decision.history.pid.output == 8.0


# ------------------------------------------------------------------- 6–7. limits and anti-windup


def test_the_hpa_default_behaviour_limits_the_pid_too() -> None:
    spec = make_spec({"kp": 1, "ki": 0.05}, behavior={})
    history = state(2.0, 2, error=0.0, measurement=2)

    decision = pid.decide(spec, 2, [metric(40)], history, NOW)

    # P: 2 × 19 = 38 → 40 replicas; the default scale-up policy allows 2 + 4 = 6.
    assert decision.desired_replicas == 6
    assert decision.steps[-1].rule == "policy"


@pytest.mark.parametrize(
    ("output", "integral", "stabilized", "desired", "held", "hpa", "bounds", "expected"),
    [
        (14.0, 2.0, 14, 14, None, 14, (1, 100), Windup(14.0, False)),
        (30.0, 2.0, 30, 14, None, 40, (1, 100), Windup(14.0, True)),
        (30.0, 2.0, 30, 20, None, 40, (1, 20), Windup(20.0, True)),
        (7.0, -2.0, 10, 10, "down", 8, (1, 100), Windup(8.0, False)),
        (7.0, -2.0, 10, 10, "down", 9, (1, 100), Windup(9.0, False)),
        (7.0, -2.0, 10, 10, "down", 5, (1, 100), Windup(7.0, False)),
        (13.0, 2.0, 10, 10, "up", 12, (1, 100), Windup(12.0, False)),
        (0.0, -1.0, 0, 1, None, 0, (1, 100), Windup(1.0, True)),
        (20.0, 2.0, 20, 20, None, 20, (1, 20), Windup(20.0, False)),
    ],
    ids=[
        "nothing limited keeps the output",
        "a rate policy cut brings the output back to the applied count",
        "a maxReplicas cut brings the output back to the bound",
        "a held scale-down integrates only as far as the proportional count",
        "a held scale-down does not integrate past an output already beyond it",
        "a held scale-down integrates freely above the proportional count",
        "a held scale-up integrates only as far as the proportional count",
        "a minReplicas cut brings the output back to the bound",
        "an output that just reaches maxReplicas is not a cut",
    ],
)
def test_anti_windup_keeps_the_output_where_the_plant_can_follow(
    output: float,
    integral: float,
    stabilized: int,
    desired: int,
    held: Literal["up", "down"] | None,
    hpa: int,
    bounds: tuple[int, int],
    expected: Windup,
) -> None:
    result = anti_windup(
        output,
        integral,
        stabilized=stabilized,
        desired=desired,
        held=held,
        proportional=hpa,
        min_replicas=bounds[0],
        max_replicas=bounds[1],
    )

    assert result == expected


@pytest.mark.parametrize(
    ("recommendation", "stabilized", "hpa", "expected"),
    [
        (10, 10, 8, (None, 10)),
        (6, 10, 8, ("down", 8)),
        (6, 10, 12, ("down", 10)),
        (6, 10, 5, ("down", 6)),
        (16, 10, 12, ("up", 12)),
        (16, 10, 20, ("up", 16)),
    ],
    ids=[
        "nothing held",
        "a held scale-down records the proportional count",
        "…never above the held count",
        "…and keeps a PID recommendation above the proportional one",
        "a held scale-up records the proportional count",
        "…and keeps a PID recommendation below the proportional one",
    ],
)
def test_a_held_recommendation_is_recorded_no_further_than_the_proportional_one(
    recommendation: int, stabilized: int, hpa: int, expected: tuple[str | None, int]
) -> None:
    assert held_recommendation(recommendation, stabilized, hpa) == expected


def test_a_held_scale_down_records_the_proportional_count_and_says_so() -> None:
    spec = make_spec({"ki": 0.1}, behavior={})
    history = replace(
        state(10.0, 10, error=-0.5, measurement=5),  # the PID: 10 − 10 × 0.1 × 0.5 × 15 = 2.5
        recommendations=(Recommendation(NOW - 60, 10),),
    )

    decision = pid.decide(spec, 10, [metric(5)], history, NOW)

    assert decision.desired_replicas == 10
    assert decision.history.recommendations[-1] == Recommendation(NOW, 5)  # the HPA's ceil(5/1)
    assert decision.steps[1].rule == "stabilization"
    assert "records 5 (the proportional count) for 3" in decision.steps[1].message


def test_a_cut_restarts_the_error_memories_so_the_cut_part_is_not_taken_back_later() -> None:
    spec = make_spec({"kp": 1, "ki": 0.05}, max_replicas=12)
    history = state(10.0, 10, error=0.0, measurement=10)

    decision = pid.decide(spec, 10, [metric(30)], history, NOW)

    assert decision.desired_replicas == 12
    assert decision.history.pid is not None
    assert decision.history.pid.output == 12.0
    assert decision.history.pid.metrics[0].error == 0.0


# ------------------------------------------------------------------- toy plants


Decide = Callable[[HorizontalAutoscalerSpec, int, list[MetricInput], History, float], Decision]
PER_NODE = 150.0  # AverageValue target: items (or units of demand) per node


def plant_spec(
    gains_doc: dict[str, float] | None = None, **kwargs: Any
) -> HorizontalAutoscalerSpec:
    """A PID spec on an AverageValue target of PER_NODE, with the HPA default behaviour."""
    kwargs.setdefault("behavior", {})
    return make_spec(gains_doc, amount=PER_NODE, **kwargs)


def run_demand_plant(
    spec: HorizontalAutoscalerSpec,
    need: Callable[[float], float],
    *,
    start: int,
    seconds: float,
    decide: Decide = pid.decide,
) -> list[tuple[float, int]]:
    """A static plant: the metric is a demand worth ``need(t)`` nodes (say, requested CPU), so
    the right count is ``need(t)`` whatever the count is now. Evaluated every 15 s; returns
    (time, desired). Pure: no I/O, no clock."""
    history, desired, trace = History(), start, []
    for k in range(int(seconds // 15) + 1):
        t = 15.0 * k
        value = need(t) * PER_NODE
        decision = decide(spec, desired, [metric(value, amount=PER_NODE)], history, NOW + t)
        history, desired = decision.history, decision.desired_replicas
        trace.append((t, desired))
    return trace


def run_queue_plant(
    spec: HorizontalAutoscalerSpec,
    arrivals: Callable[[float], float],
    *,
    start: int,
    seconds: float,
    startup_seconds: float = 90.0,
    decide: Decide = pid.decide,
) -> list[tuple[float, int, float]]:
    """A work queue, as in the benchmark: ``arrivals(t)`` items per second, each ready node
    serves one item per second, a requested node is ready ``startup_seconds`` later (removal is
    immediate). The metric is the queue length. Simulated in 1 s steps, evaluated every 15 s;
    returns (time, desired, queue length) per evaluation."""
    history, desired, queue = History(), start, 0.0
    requests: list[tuple[float, int]] = [(-1e9, start)]
    trace = []
    for t in range(int(seconds)):
        ready = min(max(count for when, count in requests if when + startup_seconds <= t), desired)
        if t % 15 == 0:
            decision = decide(spec, desired, [metric(queue, amount=PER_NODE)], history, NOW + t)
            history = decision.history
            if decision.desired_replicas != desired:
                desired = decision.desired_replicas
                requests.append((t, desired))
            trace.append((float(t), desired, queue))
        queue = max(0.0, queue + arrivals(t) - ready)
    return trace


def test_an_arrival_step_converges_without_overshoot_on_a_queue_with_node_startup_delay() -> None:
    """Arrivals step from 5 to 20 items/s (5 → 20 nodes); new nodes take 90 s to be ready."""
    trace = run_queue_plant(plant_spec(), lambda t: 5.0 if t < 600 else 20.0, start=5, seconds=3600)

    counts = [desired for t, desired, _ in trace if t >= 600]
    assert max(counts) <= 24  # overshoot at most 20 % above the 20 nodes needed
    assert all(19 <= c <= 22 for t, c, _ in trace if t >= 2400)  # settled


def test_the_default_pid_overshoots_a_queue_step_no_more_than_the_proportional_algorithm() -> None:
    hpa = plant_spec().model_copy(update={"algorithm": Algorithm()})
    step = lambda t: 5.0 if t < 600 else 20.0  # noqa: E731

    with_pid = run_queue_plant(plant_spec(), step, start=5, seconds=3600)
    with_hpa = run_queue_plant(hpa, step, start=5, seconds=3600, decide=proportional.decide)

    assert max(d for _, d, _ in with_pid) <= max(d for _, d, _ in with_hpa)


def test_a_demand_step_up_is_followed_quickly_and_without_overshoot() -> None:
    trace = run_demand_plant(plant_spec(), lambda t: 5 if t < 300 else 20, start=5, seconds=1200)

    assert max(desired for _, desired in trace) <= 20
    reached = next(t for t, desired in trace if desired >= 19)  # 19: the tolerance band
    assert reached - 300 <= 60
    assert all(19 <= desired <= 20 for t, desired in trace if t >= 600)


def test_a_demand_step_down_waits_for_the_stabilization_window_and_does_not_undershoot() -> None:
    trace = run_demand_plant(plant_spec(), lambda t: 20 if t < 300 else 8, start=20, seconds=1800)

    assert all(desired == 20 for t, desired in trace if t < 600)  # the 300 s window
    after = [desired for t, desired in trace if t >= 600]
    assert min(after) >= 8
    assert trace[-1][1] in (8, 9)


def test_after_a_long_saturation_at_max_replicas_recovery_does_not_undershoot() -> None:
    """Demand needs 40 nodes for an hour while maxReplicas is 15, then drops to 10. Without
    anti-windup the integral would hold the output far above 15 and the error memory would
    take the count far below 10 when the demand drops."""
    spec = plant_spec(
        {"kp": 0.5, "ki": 0.05},
        behavior={"scaleDown": {"stabilizationWindowSeconds": 60}},
        max_replicas=15,
    )

    trace = run_demand_plant(spec, lambda t: 40 if t < 3600 else 10, start=10, seconds=5400)

    assert max(desired for _, desired in trace) == 15
    after = [(t, desired) for t, desired in trace if t > 3600]
    assert next(t for t, desired in after if desired <= 11) - 3600 <= 180
    assert min(desired for _, desired in after) >= 10


def test_after_a_long_saturation_at_min_replicas_a_rise_is_followed_without_overshoot() -> None:
    spec = plant_spec(min_replicas=5)

    trace = run_demand_plant(spec, lambda t: 1 if t < 3600 else 12, start=5, seconds=4800)

    assert min(desired for _, desired in trace) == 5
    after = [(t, desired) for t, desired in trace if t >= 3600]
    assert next(t for t, desired in after if desired >= 11) - 3600 <= 120
    assert max(desired for _, desired in after) <= 12


def test_with_ki_one_over_the_interval_and_no_kp_the_pid_acts_like_the_hpa() -> None:
    """ki = 1/dt closes the whole error in one evaluation, as the proportional rule does."""
    spec = plant_spec({"kp": 0.0, "ki": 1 / 15})
    hpa = spec.model_copy(update={"algorithm": Algorithm()})
    need = lambda t: 5 if t < 150 else 17  # noqa: E731

    with_pid = run_demand_plant(spec, need, start=5, seconds=600)
    with_hpa = run_demand_plant(hpa, need, start=5, seconds=600, decide=proportional.decide)

    assert with_pid == with_hpa


# ------------------------------------------------------------------- state round trip


def test_the_pid_state_round_trips_through_history_and_status() -> None:
    spec = make_spec({"kp": 0.5, "ki": 0.02, "kd": 5, "derivative_filter_seconds": 30})
    first = pid.decide(spec, 10, [metric(14)], History(), NOW)
    second = pid.decide(spec, first.desired_replicas, [metric(16)], first.history, NOW + 15)
    assert second.history.pid is not None

    status = pid.state_to_status(second.history.pid)
    restored = pid.state_from_status(
        PIDStatus.model_validate(json.loads(json.dumps(status.to_dict())))
    )

    assert restored == second.history.pid
    resumed = pid.decide(
        spec, second.desired_replicas, [metric(17)], replace(second.history, pid=restored), NOW + 30
    )
    straight = pid.decide(spec, second.desired_replicas, [metric(17)], second.history, NOW + 30)
    assert resumed == straight


def test_a_restarted_loop_continues_with_the_pid_state_from_status() -> None:
    clock = FakeClock(NOW)
    backends = Backends()
    spec: dict[str, Any] = {"algorithm": {"type": "PID", "pid": {"kp": 0.5, "ki": 0.02}}}
    loop = ControlLoop(
        clock, create_producer=backends.create_producer, create_provider=backends.create_provider
    )
    from autoscaler.config import SpecSet

    hpa = autoscaler(**spec)
    loop.apply(
        SpecSet(
            node_groups={"default/g": node_group(replicas=2)},
            producers={"default/p": schedule_producer()},
            autoscalers={"default/a": hpa},
        )
    )
    backends.producers["p"].value = 12
    for _ in range(4):
        loop.run_once()
        clock.advance(15)
    runtime = loop.autoscalers["default/a"]
    assert runtime.history.pid is not None

    view = loop.autoscaler_view(runtime)
    persisted = {k: view["status"][k] for k in ("recommendations", "scaleEvents", "pid")}
    status = HorizontalAutoscalerStatus.model_validate(json.loads(json.dumps(persisted)))
    restored = _history_from_status(hpa.model_copy(update={"status": status}))

    assert restored.pid == runtime.history.pid
    assert restored.recommendations == runtime.history.recommendations


# ------------------------------------------------------------------- spec


def test_a_pid_autoscaler_loads_from_yaml() -> None:
    text = """\
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: workers}
spec: {type: Simulated, id: workers}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {name: office-hours}
spec:
  schedule: {timezone: UTC, defaultReplicas: 1, behaviors: []}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: workers}
spec:
  scaleTargetRef: {name: workers}
  maxReplicas: 10
  metrics:
    - producer: {name: office-hours}
      target: {type: Value, value: 1}
  algorithm:
    type: PID
    pid: {kp: 0.5, ki: 0.02, kd: 10, derivativeFilterSeconds: 30}
"""
    result = load_text(text)

    assert [issue.message for issue in result.issues] == []
    loaded = result.specs.autoscalers["default/workers"].spec.algorithm
    assert loaded.pid_parameters == PIDParameters(kp=0.5, ki=0.02, kd=10)
    assert algorithms.decide_for(result.specs.autoscalers["default/workers"].spec) is pid.decide


@pytest.mark.parametrize(
    ("gains_doc", "message"),
    [
        ({"kp": 0, "ki": 0, "kd": 0}, "all gains are 0"),
        ({"kp": 1, "ki": 0}, "ki must be greater than 0"),
        ({"kp": -1}, "greater than or equal to 0"),
        ({"kd": 3601}, "less than or equal to 3600"),
    ],
    ids=["all zero", "no integral action", "negative", "too large"],
)
def test_invalid_gains_are_rejected_with_the_path_of_the_pid_block(
    gains_doc: dict[str, float], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_spec(gains_doc)

    error = caught.value.errors()[0]
    assert error["loc"][:2] == ("algorithm", "pid")
    assert message in error["msg"]


def test_the_default_gains_are_valid_and_pid_may_be_left_out() -> None:
    spec = make_spec()
    bare = spec.model_copy(update={"algorithm": spec.algorithm.model_copy(update={"pid": None})})

    assert bare.algorithm.pid_parameters == PIDParameters()
    assert PIDParameters().ki > 0


def test_a_scale_step_between_two_readings_is_not_mistaken_for_a_falling_signal() -> None:
    # AverageValue errors are relative to the count: 1 node at 1000 messages is an error of 9,
    # 10 nodes at 1200 an error of 0.2. Read naively, the error "fell" by 8.8 and the
    # proportional term would take the group to 0 with 1,200 messages queued.
    spec = make_spec(
        {"kp": 0.2, "ki": 0.05, "kd": 0},
        behavior={
            "scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 0},
        },
        amount=100,
    )
    history = History()
    current = 1
    for step, queue in enumerate((100, 1000, 1200)):
        decision = pid.decide(spec, current, [metric(queue, amount=100)], history, NOW + 15 * step)
        history, current = decision.history, decision.desired_replicas
    assert current >= 12  # 1,200 messages at 100 per node
