"""Effective rules are cached by the behaviour's values, and never by mistake."""

from __future__ import annotations

import pytest

from autoscaler.algorithms import proportional
from autoscaler.algorithms.proportional import effective_rules
from autoscaler.api.horizontalautoscaler import Behavior


def _behavior(**fields: object) -> Behavior:
    return Behavior.model_validate(fields)


def test_equal_behaviours_written_apart_share_their_effective_rules() -> None:
    first = _behavior(scaleDown={"stabilizationWindowSeconds": 60})
    second = _behavior(scaleDown={"stabilizationWindowSeconds": 60})
    assert first is not second
    up, down = effective_rules(first)
    assert effective_rules(second) == (up, down)
    assert effective_rules(second)[1] is down
    assert (down.stabilization_window_seconds, down.tolerance) == (60, 0.1)
    assert [(p.type, p.value, p.period_seconds) for p in down.policies or []] == [
        ("Percent", 100, 15)
    ]


@pytest.mark.parametrize(
    ("fields", "expected_down_window", "expected_up_policies"),
    [
        pytest.param({}, 300, [("Pods", 4, 15), ("Percent", 100, 15)], id="defaults"),
        pytest.param(
            {"scaleDown": {"stabilizationWindowSeconds": 0}},
            0,
            [("Pods", 4, 15), ("Percent", 100, 15)],
            id="window",
        ),
        pytest.param(
            {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
            300,
            [("Pods", 2, 60)],
            id="policies",
        ),
        pytest.param(
            {"scaleUp": {"policies": [{"type": "Pods", "value": 3, "periodSeconds": 60}]}},
            300,
            [("Pods", 3, 60)],
            id="another-policy-value",
        ),
    ],
)
def test_behaviours_that_differ_in_any_field_get_their_own_rules(
    fields: dict[str, object],
    expected_down_window: int,
    expected_up_policies: list[tuple[str, int, int]],
) -> None:
    up, down = effective_rules(_behavior(**fields))
    assert down.stabilization_window_seconds == expected_down_window
    assert [(p.type, p.value, p.period_seconds) for p in up.policies or []] == (
        expected_up_policies
    )


def test_no_behaviour_is_the_default_behaviour() -> None:
    assert effective_rules(None) == effective_rules(Behavior())


def test_a_full_cache_starts_over_and_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proportional, "_EFFECTIVE", {})
    monkeypatch.setattr(proportional, "_EFFECTIVE_MAX", 2)
    windows = [10, 20, 30, 10]
    got = [
        effective_rules(_behavior(scaleDown={"stabilizationWindowSeconds": w}))[1] for w in windows
    ]
    assert [rules.stabilization_window_seconds for rules in got] == windows
    assert len(proportional._EFFECTIVE) <= 2
