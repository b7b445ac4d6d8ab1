"""Conditions: transition times move only when the status changes; models are made on read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autoscaler.conditions import Conditions

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_setting_the_same_condition_again_keeps_its_transition_time() -> None:
    conditions = Conditions()
    assert conditions.set("Active", "True", "Observed", "fine", T0) is True
    first = conditions.get("Active")
    assert first is not None
    assert first.last_transition_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert conditions.set("Active", "True", "Observed", "fine", T0 + 60) is False
    assert conditions.get("Active") == first


def test_a_new_message_keeps_the_transition_time_and_a_new_status_moves_it() -> None:
    conditions = Conditions()
    conditions.set("Active", "True", "Observed", "fine", T0)
    assert conditions.set("Active", "True", "Observed", "still fine", T0 + 60) is False
    changed = conditions.get("Active")
    assert changed is not None
    assert (changed.message, changed.last_transition_time) == (
        "still fine",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert conditions.set("Active", "False", "Failed", "broken", T0 + 120) is True
    failed = conditions.get("Active")
    assert failed is not None
    assert (failed.status, failed.reason, failed.message) == ("False", "Failed", "broken")
    assert failed.last_transition_time == datetime(2026, 1, 1, 0, 2, tzinfo=UTC)


def test_conditions_list_in_the_order_first_set_and_can_be_removed() -> None:
    conditions = Conditions()
    conditions.set("Active", "True", "A", "", T0)
    conditions.set("AbleToScale", "True", "B", "", T0)
    conditions.set("Active", "False", "C", "", T0 + 1)
    assert [(c.type, c.reason) for c in conditions.as_list()] == [
        ("Active", "C"),
        ("AbleToScale", "B"),
    ]
    conditions.remove("Active")
    assert [c.type for c in conditions.as_list()] == ["AbleToScale"]
    assert conditions.get("Active") is None


@pytest.mark.parametrize(
    "since",
    [T0, T0 + 0.5, T0 + 0.123456, T0 + 59.9999995, 0.0, 253402300799.0],
    ids=["whole second", "half", "microseconds", "rounding", "epoch", "year 9999"],
)
def test_the_json_form_is_what_the_condition_model_gives(since: float) -> None:
    conditions = Conditions()
    conditions.set("Active", "True", "Observed", "fine", since)
    conditions.set("AbleToScale", "False", "", "", since)
    assert conditions.to_dicts() == [c.to_dict() for c in conditions.as_list()]
