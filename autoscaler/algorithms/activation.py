"""Activation: when an autoscaler at zero replicas may leave zero (``spec.activation``).

KEDA's activation thresholds, applied as one pure step after the algorithm (any algorithm) has
decided. Without ``spec.activation`` any recommendation above zero leaves zero, as in the HPA.
With it, an autoscaler at **0 replicas** is *active* when at least one activation value is above
its threshold (``value > above``); while it is inactive the decision stays at 0 (rule
``activation``) and the recommendation recorded for the stabilization windows is 0 too.

The rules, each chosen so that activation can only make an idle group cheaper, never lose work:

* It governs leaving zero only. At one replica or more it does nothing: the metrics alone decide
  when to scale in, to zero included (when they recommend 0), so a queue that is still draining
  never loses its last node because it fell below the activation threshold.
* A failed activation read (a missing, stale or invalid value) opens the gate: the metrics decide
  as they would without activation. A broken age signal never keeps work waiting.
* ``minReplicas`` must be 0 (checked by the spec model).

A queue typically pairs its length (above one node's worth of work) with the age of its oldest
item (above the wait it can afford before a node must start): a trickle then waits at zero nodes
until its oldest item has used its budget, and a burst starts nodes at once
(``docs/algorithm.md``, ``docs/tuning.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from autoscaler.algorithms.types import ConditionInfo, Decision, Recommendation, Step

__all__ = ["ActivationInput", "applies", "gate", "is_active"]


@dataclass(frozen=True, slots=True)
class ActivationInput:
    """One activation condition as observed now. ``value`` is None when the read failed."""

    name: str
    above: float
    value: float | None
    error: str | None = None


def _num(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else f"{value:.3e}"


def is_active(inputs: Sequence[ActivationInput]) -> tuple[bool, str]:
    """Whether the autoscaler may leave zero, and why (a sentence for the decision's reasons).

    Active when any value is above its threshold, or when any read failed (module docstring)."""
    failed = [i for i in inputs if i.value is None]
    if failed:
        first = failed[0]
        return True, f"activation {first.name} could not be read ({first.error or 'no value'})"
    above = [i for i in inputs if i.value is not None and i.value > i.above]
    if above:
        first = above[0]
        assert first.value is not None
        return True, f"activation {first.name} = {_num(first.value)} > {_num(first.above)}"
    shown = ", ".join(f"{i.name} = {_num(i.value or 0.0)} ≤ {_num(i.above)}" for i in inputs)
    return False, f"inactive ({shown})"


def applies(decision: Decision) -> bool:
    """Whether activation can change ``decision``: it would leave zero replicas. Only then do
    the activation values need to be read."""
    return decision.current_replicas == 0 and decision.desired_replicas > 0


def gate(decision: Decision, inputs: Sequence[ActivationInput], now: float) -> Decision:
    """``decision`` held at 0 when it would leave zero replicas while inactive.

    No inputs (no ``spec.activation``), a current count above 0, or a decision that stays at 0
    return ``decision`` unchanged. Otherwise, when inactive, the desired count becomes 0, a step
    ``activation`` explains it, the scale event of this evaluation is dropped, the recommendation
    recorded at ``now`` becomes 0, and ``ScalingActive`` is False with reason
    ``BelowActivation``.
    """
    if not inputs or not applies(decision):
        return decision
    active, why = is_active(inputs)
    if active:
        return decision
    desired = decision.desired_replicas
    history = decision.history
    events = history.scale_events
    if events and events[-1].time == now:
        events = events[:-1]
    recommendations = tuple(
        Recommendation(r.time, 0) if r.time == now else r for r in history.recommendations
    )
    message = f"{why}: stays at 0 instead of {desired}"
    conditions = tuple(
        ConditionInfo(
            "ScalingActive",
            "False",
            "BelowActivation",
            f"every activation value is at or below its threshold: {why.removeprefix('inactive ')}",
        )
        if c.type == "ScalingActive"
        else c
        for c in decision.conditions
    )
    if history.pid is not None:  # the PID restarts from the count applied: 0
        history = replace(history, pid=replace(history.pid, output=0.0, applied=0))
    return replace(
        decision,
        desired_replicas=0,
        steps=(*decision.steps, Step("activation", desired, 0, message)),
        conditions=conditions,
        history=replace(history, recommendations=recommendations, scale_events=events),
    )
