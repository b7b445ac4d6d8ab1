"""bench/control_quality.py: the issue's goal, judged against the baseline of the same run."""

from __future__ import annotations

from bench.control_quality import goal

BASE = {
    "node_seconds": 1000,
    "efficiency": 0.8,
    "late_items": 0,
    "late_fraction": 0.0,
}


def test_the_baseline_is_the_reference() -> None:
    assert goal(BASE, BASE) == "(reference)"


def test_no_late_items_at_no_more_node_seconds_meets_the_goal_when_the_baseline_has_none() -> None:
    same_cost = {**BASE, "efficiency": 0.8}
    assert goal(same_cost, BASE).startswith("met (0 late items")


def test_twenty_percent_fewer_node_seconds_with_no_more_late_items_meets_the_goal() -> None:
    cheaper = {**BASE, "node_seconds": 800, "efficiency": 1.0}
    assert goal(cheaper, BASE) == "met (≥ 20 % fewer node-s)"


def test_more_node_seconds_or_low_efficiency_or_late_items_miss_the_goal() -> None:
    assert "node-s" in goal({**BASE, "node_seconds": 1010}, BASE)
    assert "efficiency 0.70 < 0.75" in goal({**BASE, "efficiency": 0.7, "node_seconds": 900}, BASE)
    late = {**BASE, "late_items": 5, "late_fraction": 0.02}
    missed = goal(late, BASE)
    assert missed.startswith("**not met**") and "late 2.00% > 1 %" in missed


def test_half_the_late_items_at_no_more_node_seconds_meets_the_goal() -> None:
    base = {**BASE, "late_items": 100, "late_fraction": 0.01}
    better = {**base, "late_items": 50, "late_fraction": 0.005}
    assert goal(better, base) == "met (≥ 50 % fewer late items, ≤ baseline node-s)"
