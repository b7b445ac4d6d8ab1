"""Operator controls and safety limits: the pure steps, and their effects through the loop."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from autoscaler import controls
from autoscaler.algorithms.types import Decision, History, ScaleEvent, Step
from autoscaler.api import NodeGroupState
from autoscaler.api.scalablenodegroup import NodeGroupLimits
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings
from tests.support import (
    Backends,
    FakeProvider,
    autoscaler,
    node_group,
    schedule_producer,
)

NOW = 1_000.0
SCALE_DOWN_AT_ONCE = {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}


def _decision(current: int, desired: int) -> Decision:
    """What the algorithm hands over: a metrics step and, when the count changes, an event."""
    events = (ScaleEvent(NOW, desired - current),) if desired != current else ()
    return Decision(
        current_replicas=current,
        desired_replicas=desired,
        metrics=(),
        steps=(Step("metrics", current, desired, f"metrics ask for {desired}"),),
        conditions=(),
        history=History(scale_events=(ScaleEvent(NOW - 60, 1), *events)),
    )


class SettlingProvider(FakeProvider):
    """A fake node group that reports ``stable`` as told (nodes provisioning or not)."""

    stable = True

    def get_replicas(self) -> NodeGroupState:
        state = super().get_replicas()
        return NodeGroupState(
            state.desired, state.ready, state.min_size, state.max_size, self.stable
        )


def _state(stable: bool) -> NodeGroupState:
    return NodeGroupState(desired=10, ready=8 if not stable else 10, stable=stable)


# --------------------------------------------------------------------------- pure steps

LIMIT_CASES: list[tuple[int, int, dict[str, Any], bool, int, str | None]] = [
    # current, desired, limits, stable, expected, rule of the last step
    (2, 10, {"maxScaleUpStep": 3}, True, 5, "nodeGroupLimit"),
    (2, 4, {"maxScaleUpStep": 3}, True, 4, "metrics"),
    (2, 10, {"maxScaleUpStep": 3}, False, 5, "nodeGroupLimit"),
    (10, 2, {"maxScaleDownStep": 3}, True, 7, "nodeGroupLimit"),
    (10, 8, {"maxScaleDownStep": 3}, True, 8, "metrics"),
    (10, 2, {}, False, 10, "nodeGroupLimit"),
    (10, 2, {"scaleInOnlyWhenStable": False}, False, 2, "metrics"),
    (10, 2, {"scaleInOnlyWhenStable": False, "maxScaleDownStep": 5}, False, 5, "nodeGroupLimit"),
    (10, 2, {}, True, 2, "metrics"),
    (4, 9, {}, False, 9, "metrics"),
]


@pytest.mark.parametrize(
    ("current", "desired", "limits", "stable", "expected", "rule"),
    LIMIT_CASES,
    ids=[
        "a scale-up beyond maxScaleUpStep is cut",
        "a scale-up within maxScaleUpStep passes",
        "a scale-up while unstable is allowed but still cut",
        "a scale-down beyond maxScaleDownStep is cut",
        "a scale-down within maxScaleDownStep passes",
        "a scale-in waits while the group is not stable by default",
        "a scale-in goes on while unstable when that is disabled",
        "the scale-down step applies when stability is not required",
        "a scale-in of a stable group passes",
        "no limits means no cut",
    ],
)
def test_node_group_limits_cut_or_hold_the_change(
    current: int,
    desired: int,
    limits: dict[str, Any],
    stable: bool,
    expected: int,
    rule: str | None,
) -> None:
    decision = controls.node_group_limit(
        _decision(current, desired),
        NodeGroupLimits.model_validate(limits),
        _state(stable),
        "default/g",
        NOW,
    )
    assert decision.desired_replicas == expected
    assert decision.steps[-1].rule == rule
    changes = [e.change for e in decision.history.scale_events if e.time == NOW]
    assert changes == ([expected - current] if expected != current else [])
    if rule == "nodeGroupLimit":
        limited = next(c for c in decision.conditions if c.type == "ScalingLimited")
        assert limited.reason == "NodeGroupLimit" and "default/g" in limited.message


BUDGET_CASES: list[tuple[int, int, int | None, int, int, str]] = [
    # current, desired, max total, nodes in the other groups, expected, last rule
    (4, 10, 20, 14, 6, "budget"),
    (4, 10, 20, 5, 10, "metrics"),
    (4, 10, None, 100, 10, "metrics"),
    (4, 10, 20, 18, 4, "budget"),
    (4, 10, 20, 30, 4, "budget"),
    (10, 4, 5, 30, 4, "metrics"),
]


@pytest.mark.parametrize(
    ("current", "desired", "max_total", "others", "expected", "rule"),
    BUDGET_CASES,
    ids=[
        "a scale-up beyond the budget is cut to what fits",
        "a scale-up within the budget passes",
        "no budget means no cut",
        "a full budget holds the current count",
        "an overspent budget never forces a scale-down",
        "a scale-down is never cut",
    ],
)
def test_the_node_budget_cuts_scale_ups_only(
    current: int, desired: int, max_total: int | None, others: int, expected: int, rule: str
) -> None:
    decision = controls.budget(_decision(current, desired), max_total, others, NOW)
    assert decision.desired_replicas == expected
    assert decision.steps[-1].rule == rule
    if rule == "budget":
        assert f"node budget {max_total}" in decision.steps[-1].message


def test_a_pause_holds_the_count_and_says_who_paused_and_what_would_have_happened() -> None:
    pause = controls.Pause("alice", "maintenance", NOW - 30)
    decision = controls.paused(_decision(3, 7), pause, NOW)
    assert decision.desired_replicas == 3
    assert decision.steps[-1].rule == "paused"
    assert "paused by alice" in decision.reasons[-1] and "maintenance" in decision.reasons[-1]
    assert "would scale 3 → 7" in decision.reasons[-1]
    assert [e.time for e in decision.history.scale_events] == [NOW - 60]
    able = next(c for c in decision.conditions if c.type == "AbleToScale")
    assert (able.status, able.reason) == ("False", "Paused")


def test_an_override_pins_the_count_and_records_the_change_it_makes() -> None:
    pinned = controls.Override(8, "incident 42", "bob", NOW - 10, NOW + 600)
    decision = controls.override(_decision(3, 5), pinned, NOW)
    assert decision.desired_replicas == 8
    assert decision.steps[-1].rule == "override"
    assert "overridden to 8 by bob until" in decision.reasons[-1]
    assert "asks for 5" in decision.reasons[-1]
    assert decision.history.scale_events[-1] == ScaleEvent(NOW, 5)


def test_a_dry_run_keeps_the_decision_but_remembers_no_scale_event() -> None:
    decision = controls.dry_run(_decision(3, 7), NOW)
    assert (decision.current_replicas, decision.desired_replicas) == (3, 7)
    assert decision.steps[-1].rule == "dryRun"
    assert "dry run" in decision.reasons[-1] and "would scale 3 → 7" in decision.reasons[-1]
    assert [e.time for e in decision.history.scale_events] == [NOW - 60]


# --------------------------------------------------------------------------- through the loop


def _specs(*objects: Any) -> SpecSet:
    from autoscaler.api import HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup

    def pick(kind: type) -> dict[str, Any]:
        return {
            f"{o.metadata.namespace}/{o.metadata.name}": o for o in objects if isinstance(o, kind)
        }

    return SpecSet(
        node_groups=pick(ScalableNodeGroup),
        producers=pick(MetricsProducer),
        autoscalers=pick(HorizontalAutoscaler),
    )


class Harness:
    """A loop on a fake clock with fake backends: group ``g`` at 2, producer ``p``, autoscaler
    ``a`` (4 messages per node, 1–20 nodes)."""

    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock()
        self.backends = Backends()
        self.producer = self.backends.create_producer(schedule_producer(), None)  # type: ignore[arg-type]
        self.producer.value = 8
        self.provider = self.backends.providers["g"] = SettlingProvider(desired=2)
        self.loop = ControlLoop(
            self.clock,
            LoopSettings(**settings),
            create_producer=self.backends.create_producer,
            create_provider=self.backends.create_provider,
        )
        self.objects: list[Any] = [
            node_group(),
            schedule_producer(),
            autoscaler(**SCALE_DOWN_AT_ONCE),
        ]
        self.loop.apply(_specs(*self.objects))
        self.loop.run_once()

    def run(self, seconds: float) -> None:
        self.loop.run_until(self.clock() + seconds, self.clock.set)

    def latest(self) -> Any:
        return self.loop.decisions.query(limit=1)[0]

    def autoscaler_status(self) -> dict[str, Any]:
        return self.loop.autoscaler_view(self.loop.autoscalers["default/a"])["status"]

    def node_group_view(self) -> dict[str, Any]:
        return self.loop.node_group_view(self.loop.node_groups["default/g"])


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_paused_autoscaler_keeps_deciding_but_never_changes_its_node_group() -> None:
    h = Harness()
    assert h.provider.desired == 2
    h.loop.pause("default/a", "alice", "maintenance window")
    h.producer.value = 40  # would ask for 10 nodes
    h.run(120)
    assert h.provider.desired == 2
    assert h.provider.set_calls == []
    latest = h.latest()
    assert (latest.from_replicas, latest.to_replicas, latest.limited_by) == (2, 2, "paused")
    assert any("would scale 2 → " in r for r in latest.reasons)
    first = h.loop.decisions.query(limit=100)[-2]  # the decision that followed the pause
    assert first.actor == "alice" and "paused by alice" in first.reasons[0]
    status = h.autoscaler_status()
    assert status["paused"]["by"] == "alice"
    assert status["paused"]["reason"] == "maintenance window"
    assert _condition(status, "AbleToScale")["reason"] == "Paused"


def test_a_resumed_autoscaler_scales_again_and_the_trail_says_who_resumed_it() -> None:
    h = Harness()
    h.loop.pause("default/a", "alice")
    h.producer.value = 40
    h.run(60)
    assert h.provider.desired == 2
    assert h.loop.resume("default/a", "carol") is True
    assert h.loop.resume("default/a", "carol") is False
    h.loop.run_once()
    assert h.provider.desired == 6  # +4 nodes per 15 s (the HPA default scale-up policy)
    resumed = h.latest()
    assert resumed.actor == "carol" and resumed.reasons[0] == "resumed by carol"
    assert resumed.limited_by != "paused"
    h.run(30)
    assert h.provider.desired == 10
    assert "paused" not in h.autoscaler_status()
    assert _condition(h.autoscaler_status(), "AbleToScale")["reason"] != "Paused"


def test_a_pause_and_an_override_survive_a_spec_reload() -> None:
    h = Harness()
    h.loop.pause("default/a", "alice")
    h.loop.set_override("default/g", 5, "bob", "incident")
    edited = [node_group(replicas=3), schedule_producer(), autoscaler(maxReplicas=30)]
    h.loop.apply(_specs(*edited))
    h.run(30)
    assert "default/a" in h.loop.pauses
    assert h.loop.node_groups["default/g"].desired == 5
    assert h.provider.desired == 5
    h.loop.apply(_specs(node_group(), schedule_producer()))  # the autoscaler is removed
    assert "default/a" not in h.loop.pauses
    assert "default/g" in h.loop.overrides


def test_an_override_pins_the_node_group_until_it_expires_and_decisions_say_so() -> None:
    h = Harness()
    h.loop.set_override("default/g", 7, "bob", "load test", duration_seconds=120)
    h.loop.run_once()
    assert h.provider.desired == 7
    latest = h.latest()
    assert latest.limited_by == "override" and latest.actor == "bob"
    assert "overridden to 7 by bob" in latest.reasons[0]
    assert h.node_group_view()["status"]["override"]["by"] == "bob"
    assert h.node_group_view()["status"]["override"]["replicas"] == 7
    assert "expires" in h.node_group_view()["status"]["override"]
    limited = _condition(h.autoscaler_status(), "ScalingLimited")
    assert limited["reason"] == "NodeGroupOverridden"

    h.run(110)
    assert h.provider.desired == 7
    h.run(20)  # expired: the autoscaler takes over from 7 (8 messages → 2 nodes)
    assert "default/g" not in h.loop.overrides
    assert "override" not in h.node_group_view()["status"]
    assert h.provider.desired == 2
    expired = [d for d in h.loop.decisions.query(limit=100) if "override expired" in d.reasons]
    assert expired and expired[0].actor == "bob"


def test_an_override_outside_the_group_bounds_is_refused_and_removal_is_reported() -> None:
    h = Harness()
    h.provider.max_size = 10
    h.run(15)  # the next read learns the bounds
    with pytest.raises(ValueError, match=r"outside the bounds .* \[None, 10\]"):
        h.loop.set_override("default/g", 11, "bob", "too big")
    with pytest.raises(KeyError):
        h.loop.set_override("default/nope", 1, "bob", "no such group")
    assert h.loop.clear_override("default/g", "bob") is False
    h.loop.set_override("default/g", 4, "bob", "until further notice")
    assert h.loop.clear_override("default/g", "dave") is True
    h.loop.run_once()
    assert h.latest().reasons[0] == "override removed by dave"


def test_operator_actions_are_audited_with_who_and_what(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    with caplog.at_level(logging.INFO, logger="autoscaler.audit"):
        h.loop.pause("default/a", "alice", "maintenance")
        h.loop.resume("default/a", "carol")
        h.loop.set_override("default/g", 3, "bob", "incident", duration_seconds=60)
        h.loop.clear_override("default/g", "bob")
    lines = [r.getMessage() for r in caplog.records if r.name == "autoscaler.audit"]
    assert lines == [
        "alice paused autoscaler default/a: maintenance",
        "carol resumed autoscaler default/a (paused by alice)",
        "bob set an override on node group default/g: 3 replicas for 60s: incident",
        "bob removed the override of node group default/g (3 replicas, set by bob)",
    ]


def test_a_dry_run_decides_and_records_but_never_calls_set_replicas() -> None:
    h = Harness(dry_run=True)
    h.producer.value = 40
    h.run(120)
    assert h.provider.set_calls == []
    assert h.provider.desired == 2
    latest = h.latest()
    assert latest.limited_by == "dryRun" and latest.from_replicas == 2 and latest.to_replicas > 2
    assert any("dry run" in r for r in latest.reasons)
    ups = [d for d in h.loop.decisions.query(limit=100) if d.to_replicas > d.from_replicas]
    assert len(ups) == 1  # the same would-be change is not recorded at every evaluation
    view = h.node_group_view()
    assert view["status"]["dryRun"] is True
    assert view["spec"]["replicas"] == latest.to_replicas  # what it would ask for
    assert view["status"]["desiredReplicas"] == 2  # what the group has
    assert _condition(h.autoscaler_status(), "AbleToScale")["reason"] == "DryRun"

    h.loop.apply(_specs(node_group(replicas=9), schedule_producer(), autoscaler()))
    h.loop.set_override("default/g", 4, "bob", "even overrides are not applied")
    h.run(60)
    assert h.provider.set_calls == []


def test_a_scale_in_waits_until_the_node_group_is_stable() -> None:
    h = Harness()
    h.producer.value = 40
    h.run(30)
    assert h.provider.desired == 10
    h.provider.stable = False  # nodes still provisioning
    h.producer.value = 8
    h.run(60)
    assert h.provider.desired == 10
    latest = h.latest()
    assert latest.limited_by == "nodeGroupLimit" and "not stable" in latest.reasons[-1]
    h.provider.stable = True
    h.run(3)  # the next read (every 2 s while unstable) sees it settle: evaluated at once
    assert h.provider.desired == 2


def test_limits_edited_in_a_spec_apply_without_resetting_the_desired_count() -> None:
    h = Harness()
    h.loop.apply(
        _specs(
            node_group(replicas=2, limits={"maxScaleUpStep": 1}),
            schedule_producer(),
            autoscaler(**SCALE_DOWN_AT_ONCE),
        )
    )
    h.producer.value = 40
    h.run(15)
    assert h.provider.desired == 3
    assert h.latest().limited_by == "nodeGroupLimit"
    h.loop.apply(
        _specs(
            node_group(replicas=2, limits={"maxScaleUpStep": 2}),
            schedule_producer(),
            autoscaler(**SCALE_DOWN_AT_ONCE),
        )
    )
    assert h.loop.node_groups["default/g"].desired == 3  # spec.replicas did not change
    assert h.backends.providers["g"] is h.provider  # nor did the provider


def test_the_node_budget_cuts_a_scale_up_across_node_groups() -> None:
    h = Harness(max_total_nodes=12)
    h.backends.providers["other"] = FakeProvider(desired=8)
    h.loop.apply(_specs(*h.objects, node_group("other")))
    h.loop.run_once()
    h.producer.value = 40
    h.run(60)
    assert h.provider.desired == 4  # 12 − 8 in the other group
    latest = h.latest()
    assert latest.limited_by == "budget"
    assert "node budget 12 (8 in the other node groups)" in latest.reasons[-1]
    assert _condition(h.autoscaler_status(), "ScalingLimited")["reason"] == "NodeBudget"
