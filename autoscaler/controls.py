"""Operator controls and safety limits: the last steps of every decision.

After the algorithm and the node group's own bounds (``nodeGroupBounds``), the loop passes each
decision through these steps, in this order; each one that applies adds a :class:`Step` with its
own rule, so the decision log says what held or cut the count (``limitedBy``):

1. ``nodeGroupLimit`` — the node group's ``spec.limits``: at most ``maxScaleUpStep`` nodes added
   and ``maxScaleDownStep`` removed by one decision, and no scale-in while the group is not stable
   (``scaleInOnlyWhenStable``, on unless disabled).
2. ``budget`` — ``loop.max_total_nodes`` across all node groups: a scale-up that would take the
   total past it is cut to what fits (never below the current count).
3. ``override`` — an operator pinned the node group's count (``PUT .../override``): the decision
   is the pinned count, until the override is removed or expires.
4. ``paused`` — an operator paused the autoscaler (``POST .../pause``): it keeps observing and
   deciding, but the count stays.
5. ``dryRun`` — dry-run mode (``loop.dry_run``): the decision is recorded as it is, and nothing is
   applied.

These are pure functions over a :class:`Decision`: no I/O, no clock (``now`` is passed in). Each
keeps the decision's history consistent: the scale event the algorithm recorded at ``now`` is
replaced by one for the final change, or dropped when nothing is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoscaler.algorithms.types import ConditionInfo, Decision, ScaleEvent, Step
from autoscaler.api import NodeGroupState
from autoscaler.api.scalablenodegroup import NodeGroupLimits
from autoscaler.clock import to_datetime


@dataclass(frozen=True, slots=True)
class Pause:
    """An autoscaler paused by an operator."""

    actor: str
    reason: str
    since: float

    def describe(self) -> str:
        text = f"paused by {self.actor} since {to_datetime(self.since).isoformat()}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True, slots=True)
class Override:
    """A node group's desired count pinned by an operator, until removed or ``expires``."""

    replicas: int
    reason: str
    actor: str
    since: float
    expires: float | None = None

    def describe(self) -> str:
        until = f" until {to_datetime(self.expires).isoformat()}" if self.expires else ""
        return f"node group overridden to {self.replicas} by {self.actor}{until}: {self.reason}"


def reshape(
    decision: Decision,
    step: Step,
    now: float,
    *,
    condition: ConditionInfo | None = None,
    applied: bool = True,
) -> Decision:
    """The decision with ``step`` appended and its result ``step.after``. The algorithm's scale
    event at ``now`` (there is one when the count changed) is replaced by one for the new change,
    or dropped when nothing changes or nothing is ``applied``. ``condition`` replaces the
    condition of its type."""
    current = decision.current_replicas
    events = decision.history.scale_events
    if decision.desired_replicas != current and events and events[-1].time == now:
        events = events[:-1]
    if applied and step.after != current:
        events = (*events, ScaleEvent(now, step.after - current))
    conditions = decision.conditions
    if condition is not None:
        conditions = (*(c for c in conditions if c.type != condition.type), condition)
    return replace(
        decision,
        desired_replicas=step.after,
        steps=(*decision.steps, step),
        conditions=conditions,
        history=replace(decision.history, scale_events=events),
    )


def _limited(reason: str, message: str) -> ConditionInfo:
    return ConditionInfo("ScalingLimited", "True", reason, message)


def node_group_limit(
    decision: Decision,
    limits: NodeGroupLimits,
    state: NodeGroupState | None,
    group: str,
    now: float,
) -> Decision:
    """Rule ``nodeGroupLimit``: the node group's ``spec.limits`` (step sizes, scale-in only when
    the group is stable, as last read)."""
    current, desired = decision.current_replicas, decision.desired_replicas
    step = None
    if desired > current:
        most = limits.max_scale_up_step
        if most is not None and desired - current > most:
            after = current + most
            step = Step(
                "nodeGroupLimit",
                desired,
                after,
                f"node group {group} maxScaleUpStep {most} limits {desired} → {after}",
            )
    elif desired < current:
        if limits.scale_in_only_when_stable and state is not None and not state.stable:
            progress = state.message or f"{state.ready} of {state.desired} ready"
            step = Step(
                "nodeGroupLimit",
                desired,
                current,
                f"node group {group} is not stable ({progress}): scale-in to {desired} waits, "
                f"holding {current} (scaleInOnlyWhenStable)",
            )
        elif (most := limits.max_scale_down_step) is not None and current - desired > most:
            after = current - most
            step = Step(
                "nodeGroupLimit",
                desired,
                after,
                f"node group {group} maxScaleDownStep {most} limits {desired} → {after}",
            )
    if step is None:
        return decision
    return reshape(decision, step, now, condition=_limited("NodeGroupLimit", step.message))


def budget(decision: Decision, max_total: int | None, others: int, now: float) -> Decision:
    """Rule ``budget``: a scale-up that would take the nodes of all groups (``others`` in the
    other groups) past ``max_total`` is cut to what fits; a scale-down is never forced."""
    current, desired = decision.current_replicas, decision.desired_replicas
    if max_total is None or desired <= current:
        return decision
    after = max(current, min(desired, max_total - others))
    if after >= desired:
        return decision
    message = (
        f"node budget {max_total} ({others} in the other node groups) limits {desired} → {after}"
    )
    step = Step("budget", desired, after, message)
    return reshape(decision, step, now, condition=_limited("NodeBudget", message))


def override(decision: Decision, pinned: Override, now: float) -> Decision:
    """Rule ``override``: the node group's count is what the operator pinned."""
    message = pinned.describe()
    if decision.desired_replicas != pinned.replicas:
        message += f" (the autoscaler asks for {decision.desired_replicas})"
    step = Step("override", decision.desired_replicas, pinned.replicas, message)
    return reshape(decision, step, now, condition=_limited("NodeGroupOverridden", message))


def paused(decision: Decision, pause: Pause, now: float) -> Decision:
    """Rule ``paused``: the autoscaler decides but the count stays where it is."""
    current, desired = decision.current_replicas, decision.desired_replicas
    message = pause.describe()
    if desired != current:
        message += f"; would scale {current} → {desired}"
    step = Step("paused", desired, current, message)
    condition = ConditionInfo("AbleToScale", "False", "Paused", message)
    return reshape(decision, step, now, condition=condition)


def dry_run(decision: Decision, now: float) -> Decision:
    """Rule ``dryRun``: recorded as decided, never applied (no scale event is remembered)."""
    current, desired = decision.current_replicas, decision.desired_replicas
    outcome = f"would scale {current} → {desired}" if desired != current else f"stays at {current}"
    message = f"dry run: the node group is not resized ({outcome})"
    step = Step("dryRun", desired, desired, message)
    condition = ConditionInfo("AbleToScale", "False", "DryRun", message)
    return reshape(decision, step, now, condition=condition, applied=False)
