"""Activation (``spec.activation``): when an autoscaler at zero replicas may leave zero."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.algorithms import decide
from autoscaler.algorithms.activation import ActivationInput, gate, is_active
from autoscaler.algorithms.types import Decision, History, MetricInput, PIDState, Recommendation
from autoscaler.api.horizontalautoscaler import HorizontalAutoscalerSpec, MetricTarget

NOW = 1_767_225_600.0
TARGET = MetricTarget(type="AverageValue", average_value=100)


def _spec(**extra: Any) -> HorizontalAutoscalerSpec:
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": "g"},
        "minReplicas": 0,
        "maxReplicas": 20,
        "metrics": [
            {"producer": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": 100}}
        ],
        **extra,
    }
    return HorizontalAutoscalerSpec.model_validate(body)


def _decision(current: int, queue: float, algorithm: str = "Proportional") -> Decision:
    spec = _spec(algorithm={"type": algorithm})
    return decide(spec, current, [MetricInput("q/default", TARGET, queue)], History(), NOW)


LENGTH = "q/default"
AGE = "q/queue_oldest_message_age_seconds"


def _inputs(length: float | None, age: float | None) -> list[ActivationInput]:
    return [
        ActivationInput(LENGTH, 100, length, None if length is not None else "no value"),
        ActivationInput(AGE, 600, age, None if age is not None else "signal is stale (99s old)"),
    ]


@pytest.mark.parametrize(
    ("length", "age", "active"),
    [
        pytest.param(12, 30, False, id="both at or below their thresholds: inactive"),
        pytest.param(100, 600, False, id="a value equal to its threshold is not above it"),
        pytest.param(101, 0, True, id="the queue above one node's worth activates"),
        pytest.param(3, 601, True, id="an item older than the age threshold activates"),
        pytest.param(3, None, True, id="a failed read opens the gate"),
    ],
)
def test_activation_needs_one_value_strictly_above_its_threshold_or_a_failed_read(
    length: float, age: float | None, active: bool
) -> None:
    assert is_active(_inputs(length, age))[0] is active


def test_an_inactive_autoscaler_at_zero_stays_at_zero_and_says_why() -> None:
    decision = _decision(0, 12)
    assert decision.desired_replicas == 1  # the metric alone would leave zero
    gated = gate(decision, _inputs(12, 30), NOW)
    assert gated.desired_replicas == 0
    assert gated.steps[-1].rule == "activation"
    assert gated.steps[-1].message == (
        f"inactive ({LENGTH} = 12 ≤ 100, {AGE} = 30 ≤ 600): stays at 0 instead of 1"
    )
    assert gated.history.scale_events == ()  # no scale event: nothing changed
    assert gated.history.recommendations[-1] == Recommendation(NOW, 0)
    active = next(c for c in gated.conditions if c.type == "ScalingActive")
    assert (active.status, active.reason) == ("False", "BelowActivation")


@pytest.mark.parametrize(
    ("current", "queue", "inputs"),
    [
        pytest.param(0, 500, _inputs(500, 30), id="active at zero: the metrics decide"),
        pytest.param(0, 0, _inputs(0, 0), id="a decision that stays at zero is left alone"),
        pytest.param(1, 12, _inputs(12, 30), id="at one replica activation does nothing"),
        pytest.param(4, 12, _inputs(12, 30), id="a draining queue keeps its nodes"),
        pytest.param(0, 12, [], id="no activation conditions: HPA behaviour"),
    ],
)
def test_activation_changes_nothing_outside_an_inactive_start_from_zero(
    current: int, queue: float, inputs: list[ActivationInput]
) -> None:
    decision = _decision(current, queue)
    assert gate(decision, inputs, NOW) is decision


def test_a_pid_held_at_zero_restarts_from_zero() -> None:
    decision = _decision(0, 12, algorithm="PID")
    assert decision.history.pid is not None
    gated = gate(decision, _inputs(12, 30), NOW)
    assert isinstance(gated.history.pid, PIDState)
    assert (gated.history.pid.output, gated.history.pid.applied) == (0.0, 0)


def test_activation_is_part_of_the_spec_with_sources_and_thresholds() -> None:
    spec = _spec(
        activation=[
            {"producer": {"name": "q"}, "above": 100},
            {"producer": {"name": "q", "metric": "queue_oldest_message_age_seconds"}, "above": 0},
        ]
    )
    assert [a.above for a in spec.activation] == [100, 0]
    assert [path for path, _ in spec.sources()] == [
        ("metrics", 0),
        ("activation", 0),
        ("activation", 1),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            {"minReplicas": 1, "activation": [{"producer": {"name": "q"}, "above": 1}]},
            "activation needs minReplicas 0",
            id="minReplicas above zero",
        ),
        pytest.param(
            {"activation": [{"producer": {"name": "q"}, "above": -1}]},
            "greater than or equal to 0",
            id="a negative threshold",
        ),
        pytest.param(
            {"activation": [{"above": 1}]},
            "exactly one of producer, prometheus",
            id="no source",
        ),
        pytest.param(
            {"activation": [{"producer": {"name": "q"}}]},
            "Field required",
            id="no threshold",
        ),
    ],
)
def test_bad_activation_specs_are_rejected(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(**extra)
