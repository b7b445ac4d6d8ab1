"""The proportional algorithm: the Kubernetes HorizontalPodAutoscaler rules as pure functions.

Each function takes the spec, the observations, the remembered :class:`History` and ``now`` (epoch
seconds) and returns values; nothing here does I/O, reads a clock or keeps state. The control loop
calls :func:`decide`; the smaller functions are public so each rule can be tested on its own.

The rules reproduced, from kubernetes ``pkg/controller/podautoscaler``, in the order applied:

1. **Per metric** (``replica_calculator.go``): ``Value`` and ``Utilization`` targets follow
   ``GetObjectMetricReplicas`` / ``getUsageRatioReplicaCount`` (``ceil(current × value/target)``);
   ``AverageValue`` follows ``GetExternalPerPodMetricReplicas`` (``ceil(value/target)``, with the
   usage ratio ``value/(target × current)`` deciding the tolerance). A ratio inside
   ``[1 − scaleDown.tolerance, 1 + scaleUp.tolerance]`` keeps the current count
   (``Tolerances.isWithin``). See :func:`replicas_for_metric`.
2. **Combine** (``horizontal.go`` ``computeReplicasForMetrics``): the highest recommendation wins;
   if every metric failed nothing changes; if some failed, scale up on the valid ones but never
   scale down. A metric that failed ``fallback.failureThreshold`` times in a row recommends
   ``fallback.replicas`` instead and counts as valid (KEDA ``fallback``).
3. **Stabilization** (``stabilizeRecommendationWithBehaviors``): the result is brought within
   [lowest recommendation over the scale-up window, highest over the scale-down window], starting
   from the current count. See :func:`stabilize`.
4. **Rate policies** (``convertDesiredReplicasWithBehaviorRate``,
   ``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
   ``getReplicasChangePerPeriod``): Pods/Percent policies bound the change per period, counted
   from the replicas at the start of the period (derived from the recorded scale events);
   ``selectPolicy`` picks among them or disables the direction. See :func:`rate_limit`.
5. **minReplicas / maxReplicas** clamp, last. See :func:`clamp`.

Defaults are HPA's (``pkg/apis/autoscaling/v2/defaults.go``), filled field by field by
:func:`effective_rules`: scale-up window 0 s, policies 4 replicas or 100 % per 15 s (Max);
scale-down window 300 s, policy 100 % per 15 s; tolerance 0.1 each way.

Deliberate differences from the HPA, all documented in ``docs/algorithm.md``:

* **Scale from zero.** With 0 replicas a ``Value`` or ``Utilization`` metric whose value is above 0
  is computed from a base of 1 replica (``ceil(value/target)``), and ``AverageValue`` gives
  ``ceil(value/target)``. Tolerance does not apply at 0 (the HPA also skips it there).
* **Exact Percent policies.** ``ceil(start × (1 + v/100))`` and ``trunc(start × (1 − v/100))`` are
  computed in integers. The HPA uses float64, which is off by one for some inputs: 10 % up from 50
  is 50 × 1.1 = 55.00000000000001 → 56, 80 % down from 10 is 10 × 0.19999999999999996 → 1; here
  they are 55 and 2.
* **Float noise.** Products are rounded up after subtracting ``CEIL_EPSILON`` and the tolerance
  bounds allow the same slack, so 9 × (0.1/0.3) = 3.0000000000000004 asks for 3 replicas, not 4.
  A recommendation is capped at ``MAX_RECOMMENDATION`` (HPA's int32 range).
* **Out-of-range current counts** (below minReplicas or above maxReplicas) go through the same
  pass as any other: metrics, stabilization and policies apply and the final clamp brings the
  result within bounds. (The HPA moves to the bound without reading metrics, and evaluates them
  on its next pass.)
* **Invalid values** (NaN, infinite, negative) count as failed reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autoscaler.algorithms.types import (
    ConditionInfo,
    Decision,
    History,
    MetricInput,
    MetricResult,
    Recommendation,
    Rule,
    ScaleEvent,
    Step,
)
from autoscaler.api.horizontalautoscaler import (
    DEFAULT_TOLERANCE,
    Behavior,
    Fallback,
    HorizontalAutoscalerSpec,
    ScalingPolicy,
    ScalingRules,
    default_scale_down,
    default_scale_up,
)

__all__ = [
    "CEIL_EPSILON",
    "MAX_RECOMMENDATION",
    "Combined",
    "LimitReason",
    "PolicyLimit",
    "RateLimit",
    "Stabilization",
    "clamp",
    "combine",
    "decide",
    "effective_rules",
    "rate_limit",
    "replicas_changed_in_period",
    "replicas_for_metric",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize",
    "within_tolerance",
]

#: Slack subtracted before rounding up, so float noise (3.0000000000000004) does not add a replica.
CEIL_EPSILON = 1e-9
#: The largest recommendation a metric can make (the HPA counts replicas in int32).
MAX_RECOMMENDATION = 2**31 - 1

#: Why a limit did or did not change the value (the HPA's ``ScalingLimited`` reasons).
LimitReason = Literal[
    "DesiredWithinRange", "ScaleUpLimit", "ScaleDownLimit", "TooManyReplicas", "TooFewReplicas"
]

_LIMIT_MESSAGES: dict[LimitReason, str] = {
    "DesiredWithinRange": "the desired count is within the acceptable range",
    "ScaleUpLimit": "the desired replica count is increasing faster than the maximum scale rate",
    "ScaleDownLimit": "the desired replica count is decreasing faster than the maximum scale rate",
    "TooManyReplicas": "the desired replica count is more than the maximum replica count",
    "TooFewReplicas": "the desired replica count is less than the minimum replica count",
}


# --------------------------------------------------------------------------------- behaviour


def _filled(rules: ScalingRules, default: ScalingRules) -> ScalingRules:
    """``rules`` with every unset field taken from ``default`` (HPA ``copyHPAScalingRules``)."""
    return rules.model_copy(
        update={
            "stabilization_window_seconds": (
                default.stabilization_window_seconds
                if rules.stabilization_window_seconds is None
                else rules.stabilization_window_seconds
            ),
            "policies": default.policies if rules.policies is None else rules.policies,
            "tolerance": default.tolerance if rules.tolerance is None else rules.tolerance,
        }
    )


def _rules_key(rules: ScalingRules) -> tuple[Any, ...]:
    """Every field of ``rules`` as a hashable value."""
    policies = rules.policies
    return (
        rules.stabilization_window_seconds,
        rules.select_policy,
        None if policies is None else tuple((p.type, p.value, p.period_seconds) for p in policies),
        rules.tolerance,
    )


@dataclass(frozen=True, slots=True)
class _Rules:
    """A behaviour with the HPA defaults filled in, and the values :func:`decide` reads from it."""

    up: ScalingRules
    down: ScalingRules
    up_tolerance: float
    down_tolerance: float
    up_window: int
    down_window: int
    #: The longest policy period of either direction: older scale events can be dropped.
    longest_period: int


#: Filled rules by the value of the behaviour they were filled from (see :func:`_rules`).
_EFFECTIVE: dict[tuple[Any, ...], _Rules] = {}
#: Distinct behaviours remembered; the cache starts over beyond this (it only saves time).
_EFFECTIVE_MAX = 1024


def _rules(behavior: Behavior | None) -> _Rules:
    """:func:`effective_rules` and what follows from them, cached by the behaviour's values
    (building models costs more than the rest of a decision): treat the rules as read-only."""
    if behavior is None:
        key: tuple[Any, ...] = ()
    else:
        key = (_rules_key(behavior.scale_up), _rules_key(behavior.scale_down))
    rules = _EFFECTIVE.get(key)
    if rules is None:
        behavior = behavior if behavior is not None else Behavior()
        up = _filled(behavior.scale_up, default_scale_up())
        down = _filled(behavior.scale_down, default_scale_down())
        periods = [p.period_seconds for p in (*_policies(up, "up"), *_policies(down, "down"))]
        rules = _Rules(
            up=up,
            down=down,
            up_tolerance=_tolerance(up),
            down_tolerance=_tolerance(down),
            up_window=_window(up, "up"),
            down_window=_window(down, "down"),
            longest_period=max(periods),
        )
        if len(_EFFECTIVE) >= _EFFECTIVE_MAX:
            _EFFECTIVE.clear()
        _EFFECTIVE[key] = rules
    return rules


def effective_rules(behavior: Behavior | None) -> tuple[ScalingRules, ScalingRules]:
    """The (scale-up, scale-down) rules with HPA defaults filled in field by field.

    A field left out keeps the default of its direction: scale-up window 0 s and policies
    ``[Pods 4/15s, Percent 100%/15s]``; scale-down window 300 s and policy ``[Percent 100%/15s]``;
    tolerance :data:`~autoscaler.api.horizontalautoscaler.DEFAULT_TOLERANCE` both ways. Setting only
    ``tolerance`` therefore keeps the default window and policies.

    Results are cached by the behaviour's values (building models costs more than the rest of a
    decision), so equal behaviours share one pair of rules: treat them as read-only.
    """
    rules = _rules(behavior)
    return rules.up, rules.down


def _window(rules: ScalingRules, direction: Literal["up", "down"]) -> int:
    if rules.stabilization_window_seconds is not None:
        return rules.stabilization_window_seconds
    default = default_scale_up() if direction == "up" else default_scale_down()
    assert default.stabilization_window_seconds is not None
    return default.stabilization_window_seconds


def _policies(rules: ScalingRules, direction: Literal["up", "down"]) -> list[ScalingPolicy]:
    if rules.policies is not None:
        return rules.policies
    default = default_scale_up() if direction == "up" else default_scale_down()
    assert default.policies is not None
    return default.policies


def _tolerance(rules: ScalingRules) -> float:
    return DEFAULT_TOLERANCE if rules.tolerance is None else rules.tolerance


# --------------------------------------------------------------------------------- 1. metrics


def _ceil(value: float) -> int:
    """Round up, ignoring float noise below :data:`CEIL_EPSILON`; cap at the int32 range."""
    if not value < MAX_RECOMMENDATION:  # also catches +inf
        return MAX_RECOMMENDATION
    return max(0, math.ceil(value - CEIL_EPSILON))


def within_tolerance(ratio: float, up_tolerance: float, down_tolerance: float) -> bool:
    """HPA ``Tolerances.isWithin``: ``1 − down ≤ ratio ≤ 1 + up`` (with float slack)."""
    return 1.0 - down_tolerance - CEIL_EPSILON <= ratio <= 1.0 + up_tolerance + CEIL_EPSILON


def _invalid_value(value: float) -> str | None:
    """Why a read value cannot be used, or None when it can."""
    if math.isnan(value):
        return "metric value is NaN (not a number)"
    if math.isinf(value):
        return f"metric value is infinite ({value})"
    if value < 0:
        return f"metric value {_num(value)} is negative"
    return None


def _evaluate(
    metric: MetricInput,
    current_replicas: int,
    up_tolerance: float,
    down_tolerance: float,
    fallback: Fallback | None,
) -> tuple[MetricResult, float | None]:
    """One metric's result and its usage ratio (None when no ratio was compared)."""
    target = metric.target
    amount = target.amount
    value = metric.value
    error = (metric.error or "no value") if value is None else _invalid_value(value)
    if value is None or error is not None:
        shown = value if value is not None and math.isfinite(value) else None
        if fallback is not None and metric.consecutive_failures >= fallback.failure_threshold:
            result = MetricResult(
                metric.name, shown, target.type, amount, fallback.replicas, error, "Fallback"
            )
        else:
            result = MetricResult(metric.name, shown, target.type, amount, None, error, "Failed")
        return result, None

    if target.type == "AverageValue":
        replicas = _ceil(value / amount)
        if current_replicas == 0:
            return MetricResult(metric.name, value, target.type, amount, replicas), None
        ratio = value / (amount * current_replicas)
        if within_tolerance(ratio, up_tolerance, down_tolerance):
            held = MetricResult(
                metric.name, value, target.type, amount, current_replicas, None, "WithinTolerance"
            )
            return held, ratio
        return MetricResult(metric.name, value, target.type, amount, replicas), ratio

    # Value and Utilization: the ratio scales the current count.
    ratio = value / amount
    if current_replicas == 0:  # scale from zero: a base of one replica
        return MetricResult(metric.name, value, target.type, amount, _ceil(ratio)), None
    if within_tolerance(ratio, up_tolerance, down_tolerance):
        held = MetricResult(
            metric.name, value, target.type, amount, current_replicas, None, "WithinTolerance"
        )
        return held, ratio
    replicas = _ceil(current_replicas * ratio)
    return MetricResult(metric.name, value, target.type, amount, replicas), ratio


def replicas_for_metric(
    metric: MetricInput,
    current_replicas: int,
    *,
    up_tolerance: float = DEFAULT_TOLERANCE,
    down_tolerance: float = DEFAULT_TOLERANCE,
    fallback: Fallback | None = None,
) -> MetricResult:
    """The replica count one metric asks for (HPA ``replica_calculator.go``).

    * ``Value``: ratio ``value/target``; ``ceil(current × ratio)``.
    * ``AverageValue`` (per replica): ratio ``value/(target × current)``; ``ceil(value/target)``.
    * ``Utilization`` (percent): ratio ``value/averageUtilization``; ``ceil(current × ratio)``.

    A ratio within the tolerance keeps ``current_replicas`` (reason ``WithinTolerance``). With 0
    replicas there is no ratio to compare: ``Value``/``Utilization`` scale from a base of one
    replica and ``AverageValue`` gives ``ceil(value/target)``. A missing, NaN, infinite or negative
    value is a failure (reason ``Failed``, recommendation None) unless ``fallback`` is set and the
    metric failed at least ``failureThreshold`` times in a row (reason ``Fallback``).
    """
    result, _ = _evaluate(metric, current_replicas, up_tolerance, down_tolerance, fallback)
    return result


@dataclass(frozen=True, slots=True)
class Combined:
    """The metrics combined (HPA ``computeReplicasForMetrics``)."""

    #: The highest valid recommendation; None when every metric failed.
    recommendation: int | None
    #: The first metric with the highest recommendation; None when every metric failed.
    winner: MetricResult | None
    #: How many metrics have a recommendation (computed, within tolerance or fallback).
    valid: int
    #: The metrics without one, in order.
    failed: tuple[MetricResult, ...]
    #: Some metrics failed and the valid ones ask for fewer replicas: hold the current count.
    blocks_scale_down: bool


def combine(results: Sequence[MetricResult], current_replicas: int) -> Combined:
    """Max over the valid recommendations, and whether failed ones block a scale-down."""
    winner: MetricResult | None = None
    best = -1
    for result in results:
        if result.recommendation is not None and result.recommendation > best:
            winner, best = result, result.recommendation
    failed = tuple(r for r in results if r.recommendation is None)
    valid = len(results) - len(failed)
    if winner is None:
        return Combined(None, None, 0, failed, False)
    return Combined(best, winner, valid, failed, bool(failed) and best < current_replicas)


# --------------------------------------------------------------------------- 3. stabilization


@dataclass(frozen=True, slots=True)
class Stabilization:
    """The outcome of :func:`stabilize`."""

    #: The stabilized count.
    replicas: int
    #: Lowest recommendation over the scale-up window (the new one included).
    up_recommendation: int
    #: Highest recommendation over the scale-down window (the new one included).
    down_recommendation: int
    #: The records to keep: those still inside the longer window, then ``(now, recommendation)``.
    recommendations: tuple[Recommendation, ...]


def stabilize(
    recommendation: int,
    current_replicas: int,
    recorded: Sequence[Recommendation],
    scale_up_window: int,
    scale_down_window: int,
    now: float,
) -> Stabilization:
    """HPA ``stabilizeRecommendationWithBehaviors``, over recommendations as a step function.

    ``up`` is the minimum of ``recommendation`` and every recommendation in force during the last
    ``scale_up_window`` seconds; ``down`` the maximum over the last ``scale_down_window`` seconds.
    Starting from ``current_replicas``, the result is raised to ``up`` if below it and lowered to
    ``down`` if above it: a scale-up happens only as far as every recent recommendation agrees, a
    scale-down only as far as the highest recent recommendation allows.

    "In force" includes the newest record from *before* the window: a recommendation holds until
    the next one replaces it. The HPA re-evaluates every 15 s, so its records are never far
    apart; this loop evaluates when a signal changes, and an unchanged signal (no new record)
    must still count as recommending the same thing. A window of 0 looks at nothing recorded.

    The unstabilized ``recommendation`` is recorded; records no longer in force within the
    longer window are dropped.
    """
    # One pass over the records: the extreme over each window (a window of 0 looks at nothing
    # recorded; the newest record at or before a window's start counts), and the pruning.
    up = down = recommendation
    use_up, use_down = scale_up_window > 0, scale_down_window > 0
    up_cutoff, down_cutoff = now - scale_up_window, now - scale_down_window
    longest = max(scale_up_window, scale_down_window)
    keep_after = now - longest
    up_in_force: int | None = None  # the newest record at or before each window's start
    down_in_force: int | None = None
    in_force: Recommendation | None = None  # ... and before the start of the longer window
    kept: list[Recommendation] = []
    for record in recorded:
        time, replicas = record.time, record.replicas
        if use_up:
            if time > up_cutoff:
                if replicas < up:
                    up = replicas
            else:
                up_in_force = replicas
        if use_down:
            if time > down_cutoff:
                if replicas > down:
                    down = replicas
            else:
                down_in_force = replicas
        if time > keep_after:
            kept.append(record)
        else:
            in_force = record
    if up_in_force is not None and up_in_force < up:
        up = up_in_force
    if down_in_force is not None and down_in_force > down:
        down = down_in_force
    result = current_replicas
    if result < up:
        result = up
    if result > down:
        result = down
    if in_force is not None and longest > 0:
        kept.insert(0, in_force)  # still in force at the start of the longer window
    return Stabilization(result, up, down, (*kept, Recommendation(now, recommendation)))


# ----------------------------------------------------------------------------- 4. rate policies


def replicas_changed_in_period(
    events: Sequence[ScaleEvent], period_seconds: int, now: float
) -> tuple[int, int]:
    """(replicas added, replicas removed) by events strictly after ``now − period_seconds``.

    HPA ``getReplicasChangePerPeriod``, over scale-up and scale-down events alike.
    """
    cutoff = now - period_seconds
    added = sum(e.change for e in events if e.time > cutoff and e.change > 0)
    removed = sum(-e.change for e in events if e.time > cutoff and e.change < 0)
    return added, removed


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _trunc_div(numerator: int, denominator: int) -> int:
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


@dataclass(frozen=True, slots=True)
class PolicyLimit:
    """The bound the rate policies of one direction put on the count."""

    #: The highest (scale-up) or lowest (scale-down) count the policies allow.
    limit: int
    #: The policy selected by ``selectPolicy``; None when the direction is Disabled.
    policy: ScalingPolicy | None = None
    #: Replicas at the start of the selected policy's period.
    period_start: int | None = None


def _proposals(
    current_replicas: int,
    events: Sequence[ScaleEvent],
    policies: Sequence[ScalingPolicy],
    now: float,
    direction: Literal["up", "down"],
) -> list[PolicyLimit]:
    proposals = []
    for policy in policies:
        added, removed = replicas_changed_in_period(events, policy.period_seconds, now)
        start = current_replicas - added + removed
        if direction == "up":
            proposed = (
                start + policy.value
                if policy.type == "Pods"
                else _ceil_div(start * (100 + policy.value), 100)
            )
        else:
            proposed = (
                start - policy.value
                if policy.type == "Pods"
                else _trunc_div(start * (100 - policy.value), 100)
            )
        proposals.append(PolicyLimit(proposed, policy, start))
    return proposals


def scale_up_limit(
    current_replicas: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: float
) -> PolicyLimit:
    """HPA ``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow.

    Per policy, ``start = current − added + removed`` within its period; ``Pods`` allows
    ``start + value``, ``Percent`` ``ceil(start × (1 + value/100))``. ``selectPolicy`` Max takes the
    largest, Min the smallest; Disabled allows no change (``current_replicas``). Unset policies
    take the default.
    """
    if rules.select_policy == "Disabled":
        return PolicyLimit(current_replicas)
    proposals = _proposals(current_replicas, events, _policies(rules, "up"), now, "up")
    if rules.select_policy == "Min":
        return min(proposals, key=lambda p: p.limit)
    return max(proposals, key=lambda p: p.limit)


def scale_down_limit(
    current_replicas: int, events: Sequence[ScaleEvent], rules: ScalingRules, now: float
) -> PolicyLimit:
    """HPA ``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow.

    Per policy, ``start = current − added + removed`` within its period; ``Pods`` allows
    ``start − value``, ``Percent`` ``trunc(start × (1 − value/100))``. ``selectPolicy`` Max (the
    largest change) takes the smallest count, Min the largest; Disabled allows no change
    (``current_replicas``). Unset policies take the default.
    """
    if rules.select_policy == "Disabled":
        return PolicyLimit(current_replicas)
    proposals = _proposals(current_replicas, events, _policies(rules, "down"), now, "down")
    if rules.select_policy == "Min":
        return max(proposals, key=lambda p: p.limit)
    return min(proposals, key=lambda p: p.limit)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The outcome of :func:`rate_limit`."""

    replicas: int
    #: What bounded the value, or ``DesiredWithinRange`` when nothing did.
    reason: LimitReason
    #: The policy bound consulted (None when the desired count equals the current one).
    bound: PolicyLimit | None = None

    @property
    def disabled(self) -> bool:
        """The direction's ``selectPolicy`` is Disabled and that is what held the value."""
        return (
            self.reason in ("ScaleUpLimit", "ScaleDownLimit")
            and self.bound is not None
            and self.bound.policy is None
        )


def rate_limit(
    desired: int,
    current_replicas: int,
    min_replicas: int,
    max_replicas: int,
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    events: Sequence[ScaleEvent],
    now: float,
) -> RateLimit:
    """HPA ``convertDesiredReplicasWithBehaviorRate``.

    Scaling up, the bound is ``min(maxReplicas, scale-up limit)`` (never below the current count):
    reason ``ScaleUpLimit`` when the policy is the tighter bound, else ``TooManyReplicas``. Scaling
    down, the bound is ``max(minReplicas, scale-down limit)`` (never above the current count):
    ``ScaleDownLimit`` or ``TooFewReplicas``. ``desired`` is returned unchanged within the bound.
    """
    reason: LimitReason
    if desired > current_replicas:
        bound = scale_up_limit(current_replicas, events, scale_up, now)
        limit = max(bound.limit, current_replicas)
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return RateLimit(allowed, reason, bound)
        return RateLimit(desired, "DesiredWithinRange", bound)
    if desired < current_replicas:
        bound = scale_down_limit(current_replicas, events, scale_down, now)
        limit = min(bound.limit, current_replicas)
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return RateLimit(allowed, reason, bound)
        return RateLimit(desired, "DesiredWithinRange", bound)
    return RateLimit(desired, "DesiredWithinRange")


# ---------------------------------------------------------------------------------- 5. clamp


def clamp(desired: int, min_replicas: int, max_replicas: int) -> tuple[int, LimitReason]:
    """``desired`` within [min_replicas, max_replicas], with the reason when it moved."""
    if desired > max_replicas:
        return max_replicas, "TooManyReplicas"
    if desired < min_replicas:
        return min_replicas, "TooFewReplicas"
    return desired, "DesiredWithinRange"


# ----------------------------------------------------------------------------------- messages


def _num(value: float) -> str:
    """A number as operators read it: 40, 0.75, 1234.5 (no float noise)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _clock(moment: float) -> str:
    """Time of day in UTC, e.g. ``12:03:00Z``."""
    try:
        return time.strftime("%H:%M:%SZ", time.gmtime(moment))
    except (OverflowError, OSError, ValueError):
        return f"t={moment:.0f}"


def _policy_text(policy: ScalingPolicy) -> str:
    unit = "%" if policy.type == "Percent" else ""
    return f"{policy.type} {policy.value}{unit}/{policy.period_seconds}s"


def _target_text(result: MetricResult) -> str:
    unit = "%" if result.target_type == "Utilization" else ""
    return f"target {result.target_type} {_num(result.target)}{unit}"


def _metric_step(
    result: MetricResult,
    ratio: float | None,
    metric: MetricInput,
    current: int,
    fallback: Fallback | None,
) -> tuple[Rule, str]:
    """The rule and message for the metric that decided the combined recommendation."""
    n = result.recommendation
    if result.reason == "Fallback":
        threshold = fallback.failure_threshold if fallback is not None else 0
        return (
            "fallback",
            f"metric {result.name} failed {metric.consecutive_failures} times "
            f"(threshold {threshold}) → fallback {n} replicas",
        )
    assert metric.value is not None
    shown = f"metric {result.name}={_num(metric.value)} {_target_text(result)}"
    if result.reason == "WithinTolerance":
        assert ratio is not None
        return "tolerance", f"{shown}: ratio {ratio:.3f} within tolerance → holds {n}"
    suffix = " (scale from zero)" if current == 0 and n else ""
    return "metrics", f"{shown} → {n} replicas{suffix}"


def _of(count: int, total: int) -> str:
    """``1 of 1 metric``, ``1 of 2 metrics``."""
    return f"{count} of {total} metric{'' if total == 1 else 's'}"


def _first_error(failed: Sequence[MetricResult]) -> str:
    return f"{failed[0].name}: {failed[0].error}" if failed else "no metrics"


def _failure_reason(results: Sequence[MetricResult], metrics: Sequence[MetricInput]) -> str:
    """``InvalidMetrics`` when the first failure is a bad value, ``FailedGetMetrics`` otherwise."""
    for result, metric in zip(results, metrics, strict=True):
        if result.recommendation is None:
            return "FailedGetMetrics" if metric.value is None else "InvalidMetrics"
    return "FailedGetMetrics"


def _stabilization_step(
    recommendation: int, stabilized: Stabilization, up_window: int, down_window: int, now: float
) -> Step | None:
    if stabilized.replicas > recommendation:
        return Step(
            "stabilization",
            recommendation,
            stabilized.replicas,
            f"scale-down stabilization window {down_window}s holds {stabilized.replicas} "
            f"(highest recommendation since {_clock(now - down_window)} "
            f"was {stabilized.down_recommendation})",
        )
    if stabilized.replicas < recommendation:
        return Step(
            "stabilization",
            recommendation,
            stabilized.replicas,
            f"scale-up stabilization window {up_window}s holds {stabilized.replicas} "
            f"(lowest recommendation since {_clock(now - up_window)} "
            f"was {stabilized.up_recommendation})",
        )
    return None


def _rate_step(
    limited: RateLimit, before: int, current: int, spec: HorizontalAutoscalerSpec
) -> Step:
    after = limited.replicas
    if limited.reason == "TooManyReplicas":
        return Step(
            "minMax", before, after, f"maxReplicas {spec.max_replicas} limits {before} → {after}"
        )
    if limited.reason == "TooFewReplicas":
        return Step(
            "minMax", before, after, f"minReplicas {spec.min_replicas} limits {before} → {after}"
        )
    direction = "scale-up" if limited.reason == "ScaleUpLimit" else "scale-down"
    bound = limited.bound
    if bound is None or bound.policy is None:
        message = f"{direction} disabled (selectPolicy Disabled) holds {after}"
        return Step("policy", before, after, message)
    message = f"{direction} policy {_policy_text(bound.policy)} limits {before} → {after}"
    if bound.period_start is not None and bound.period_start != current:
        message += f" (period start {bound.period_start})"
    return Step("policy", before, after, message)


# Conditions that read the same every time are made once (decisions are kept for every
# autoscaler, and the fewer new objects a pass keeps, the less the garbage collector scans).
_UP_DISABLED = ConditionInfo(
    "AbleToScale",
    "False",
    "ScalingDisabled",
    "scaling up is disabled by behavior.scaleUp.selectPolicy: Disabled",
)
_DOWN_DISABLED = ConditionInfo(
    "AbleToScale",
    "False",
    "ScalingDisabled",
    "scaling down is disabled by behavior.scaleDown.selectPolicy: Disabled",
)
_UP_STABILIZED = ConditionInfo(
    "AbleToScale",
    "True",
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
)
_DOWN_STABILIZED = ConditionInfo(
    "AbleToScale",
    "True",
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, "
    "applying the highest recent recommendation",
)
_READY = ConditionInfo(
    "AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"
)
_NOT_LIMITED = ConditionInfo(
    "ScalingLimited",
    "False",
    "DesiredWithinRange",
    _LIMIT_MESSAGES["DesiredWithinRange"],
)
#: ``ScalingActive`` True, by the name of the metric that decided (bounded like _EFFECTIVE).
_ACTIVE: dict[str, ConditionInfo] = {}
_ACTIVE_MAX = 4096


def _active(metric: str) -> ConditionInfo:
    """``ScalingActive`` True: the count was computed from ``metric``."""
    condition = _ACTIVE.get(metric)
    if condition is None:
        condition = ConditionInfo(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            f"the autoscaler was able to compute the replica count from metric {metric}",
        )
        if len(_ACTIVE) >= _ACTIVE_MAX:
            _ACTIVE.clear()
        _ACTIVE[metric] = condition
    return condition


def _able_to_scale(
    current: int,
    desired: int,
    recommendation: int | None,
    stabilized: Stabilization | None,
    up_rules: ScalingRules,
    down_rules: ScalingRules,
) -> ConditionInfo:
    """HPA ``AbleToScale``: False when the needed direction is Disabled and nothing changed."""
    wanted = stabilized.replicas if stabilized is not None else current
    if desired == current and wanted > current and up_rules.select_policy == "Disabled":
        return _UP_DISABLED
    if desired == current and wanted < current and down_rules.select_policy == "Disabled":
        return _DOWN_DISABLED
    if desired != current:
        return ConditionInfo(
            "AbleToScale", "True", "SucceededRescale", f"scaling from {current} to {desired}"
        )
    if stabilized is not None and recommendation is not None and wanted != recommendation:
        if recommendation > current:
            return _UP_STABILIZED
        return _DOWN_STABILIZED
    return _READY


def _scaling_limited(reason: LimitReason, steps: Sequence[Step]) -> ConditionInfo:
    if reason == "DesiredWithinRange":
        return _NOT_LIMITED
    return ConditionInfo(
        "ScalingLimited", "True", reason, f"{_LIMIT_MESSAGES[reason]}: {steps[-1].message}"
    )


# --------------------------------------------------------------------------------- decide


def decide(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    history: History,
    now: float,
) -> Decision:
    """One evaluation: metrics → recommendation → stabilization → rate policies → min/max.

    Returns the desired count, each metric's result, the steps that shaped the value (in order;
    the last one is what limited it), the ``AbleToScale`` / ``ScalingActive`` / ``ScalingLimited``
    conditions and the updated history: the unstabilized recommendation is recorded whenever the
    stabilization step ran, and a scale event ``(now, desired − current)`` whenever the count
    changes. The node group's own bounds are applied afterwards by the caller
    (rule ``nodeGroupBounds``).

    Raises ``ValueError`` when ``current_replicas`` is negative.
    """
    if current_replicas < 0:
        raise ValueError(f"current_replicas must not be negative, got {current_replicas}")
    current = current_replicas
    rules = _rules(spec.behavior)
    up_rules, down_rules = rules.up, rules.down
    up_tolerance, down_tolerance = rules.up_tolerance, rules.down_tolerance

    # 1. one recommendation per metric
    evaluated = [
        _evaluate(metric, current, up_tolerance, down_tolerance, spec.fallback)
        for metric in metrics
    ]
    results = tuple(result for result, _ in evaluated)
    # 2. combined: the highest wins; failures never scale down
    combined = combine(results, current)
    total, failed = len(results), combined.failed
    steps: list[Step] = []
    recommendations = history.recommendations
    stabilized: Stabilization | None = None
    limit_reason: LimitReason = "DesiredWithinRange"

    if combined.recommendation is None or combined.winner is None:
        desired = current
        message = f"{_of(len(failed), total)} failed ({_first_error(failed)}): holds {current}"
        steps.append(Step("metrics", current, current, message))
        active = ConditionInfo(
            "ScalingActive",
            "False",
            _failure_reason(results, metrics),
            f"the autoscaler was unable to compute the replica count: "
            f"{_of(len(failed), total)} failed, first error: {_first_error(failed)}",
        )
    else:
        recommendation = combined.recommendation
        index = next(i for i, result in enumerate(results) if result is combined.winner)
        rule, message = _metric_step(
            combined.winner, evaluated[index][1], metrics[index], current, spec.fallback
        )
        if combined.valid > 1:
            message += f" (highest of {combined.valid} metrics)"
        if failed and not combined.blocks_scale_down:
            message += f"; {_of(len(failed), total)} failed, scaling on the valid ones"
        steps.append(Step(rule, current, recommendation, message))

        if combined.blocks_scale_down:
            # Like the HPA, return before stabilization: no recommendation is recorded.
            desired = current
            message = (
                f"{_of(len(failed), total)} failed ({_first_error(failed)}): "
                f"holds {current} instead of {recommendation}"
            )
            steps.append(Step("partialFailure", recommendation, current, message))
            active = ConditionInfo(
                "ScalingActive",
                "False",
                _failure_reason(results, metrics),
                f"the autoscaler was unable to compute the replica count: "
                f"{_of(len(failed), total)} failed, first error: {_first_error(failed)}; "
                "not scaling down on partial data",
            )
        else:
            active = _active(combined.winner.name)
            # 3. stabilization
            up_window, down_window = rules.up_window, rules.down_window
            stabilized = stabilize(
                recommendation, current, history.recommendations, up_window, down_window, now
            )
            recommendations = stabilized.recommendations
            step = _stabilization_step(recommendation, stabilized, up_window, down_window, now)
            if step is not None:
                steps.append(step)
            # 4. rate policies (bounded by min/max there too, as the HPA does)
            limited = rate_limit(
                stabilized.replicas,
                current,
                spec.min_replicas,
                spec.max_replicas,
                up_rules,
                down_rules,
                history.scale_events,
                now,
            )
            desired = limited.replicas
            if desired != stabilized.replicas:
                steps.append(_rate_step(limited, stabilized.replicas, current, spec))
                limit_reason = limited.reason

    # 5. minReplicas / maxReplicas last (this also corrects a current count outside the bounds)
    before = desired
    desired, clamp_reason = clamp(desired, spec.min_replicas, spec.max_replicas)
    if desired != before:
        field, bound = (
            ("maxReplicas", spec.max_replicas)
            if clamp_reason == "TooManyReplicas"
            else ("minReplicas", spec.min_replicas)
        )
        steps.append(
            Step("minMax", before, desired, f"{field} {bound} limits {before} → {desired}")
        )
        limit_reason = clamp_reason

    # 6. scale events still inside the longest policy period, plus this change
    cutoff = now - rules.longest_period
    events = tuple(event for event in history.scale_events if event.time > cutoff)
    if len(events) == len(history.scale_events):
        events = history.scale_events  # the same values: keep the tuple the history has
    if desired != current:
        events = (*events, ScaleEvent(now, desired - current))

    # 7. conditions
    able = _able_to_scale(
        current, desired, combined.recommendation, stabilized, up_rules, down_rules
    )
    return Decision(
        current_replicas=current,
        desired_replicas=desired,
        metrics=results,
        steps=tuple(steps),
        conditions=(able, active, _scaling_limited(limit_reason, steps)),
        history=History(recommendations, events),
    )
