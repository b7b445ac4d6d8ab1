"""The PID algorithm: a velocity-form PID controller inside the HPA's rules, as pure functions.

Like :mod:`~autoscaler.algorithms.proportional`, everything here takes the spec, the observations,
the remembered :class:`~autoscaler.algorithms.types.History` and ``now`` (epoch seconds) and
returns values: no I/O, no clock, no hidden state. The controller's memory is
:class:`~autoscaler.algorithms.types.PIDState`, kept in the history and in status.

The rules, in the order applied (``docs/algorithm.md``, "PID", tells them with examples):

1. **Error per metric.** The usage ratio ``r`` is the HPA's: ``value / (target × S)`` for
   ``AverageValue`` and ``value / target`` for ``Value`` and ``Utilization``, with
   ``S = max(current, 1)``. The error is ``e = r − 1``: 0 on target, +1 at twice the target.
2. **Dead band** (HPA ``Tolerances.isWithin``): a ratio within
   ``[1 − scaleDown.tolerance, 1 + scaleUp.tolerance]`` asks for the current count, and its error
   counts as 0 (nothing is integrated inside the band).
3. **Velocity form.** Each metric moves the previous output ``u`` by
   ``Δu = S × (kp × (e_k − e_{k−1}) + ki × e_k × dt + kd × (d_k − d_{k−1}))``. ``d`` is the
   derivative of the *measurement* (the raw value, not the error, so a changed target causes no
   derivative kick), low-pass filtered with time constant ``derivativeFilterSeconds`` and put in
   ratio units with the current target. ``dt`` is the time since the metric's previous sample,
   capped at :data:`MAX_DT_SECONDS`; a metric's first sample (or one after
   :data:`STALE_STATE_SECONDS` without any) only initialises its memory, without a kick.
4. **Several metrics**: every metric's increment is applied to the *same* previous output and the
   highest result wins (a max selector whose losers cannot wind up). Failed metrics, partial
   failures and ``fallback`` follow the proportional rules exactly
   (:func:`~autoscaler.algorithms.proportional.replicas_for_metric`,
   :func:`~autoscaler.algorithms.proportional.combine`). The recommendation is ``ceil(u)`` (with
   :data:`~autoscaler.algorithms.proportional.CEIL_EPSILON`). From 0 replicas there is no ratio
   to control: the metric asks for the proportional (scale-from-zero) count.
5. **Forecast** (``algorithm.predictive``): a forecast recommendation can only raise it.
6. **Stabilization, rate policies, min/max**: the same functions and HPA defaults as the
   proportional algorithm (:func:`~autoscaler.algorithms.proportional.stabilize`,
   :func:`~autoscaler.algorithms.proportional.rate_limit`,
   :func:`~autoscaler.algorithms.proportional.clamp`).
7. **Anti-windup** (:func:`anti_windup`, :func:`held_recommendation`). When a rate policy or
   min/max cut the PID's own recommendation, the output is brought back to the count applied
   (back-calculation: this step's integral is not integrated) and the metrics' error memories
   restart at 0, so the part that was cut off is neither accumulated nor taken back later. While
   a stabilization window holds the count, the recommendation it records and the integral stop
   at the proportional (HPA) recommendation, so the count does not overshoot when the window lets
   go. When the current count is not the one last decided (an operator, the node group's
   bounds), the output restarts from the current count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from autoscaler.algorithms.predictive import forecast_step

# The underscored helpers build the proportional algorithm's messages and conditions; the PID
# reuses them so both algorithms explain a decision in the same words.
from autoscaler.algorithms.proportional import (
    CEIL_EPSILON,
    MAX_RECOMMENDATION,
    LimitReason,
    Stabilization,
    _able_to_scale,
    _failure_reason,
    _first_error,
    _metric_step,
    _num,
    _of,
    _policies,
    _rate_step,
    _scaling_limited,
    _stabilization_step,
    _target_text,
    _tolerance,
    _window,
    clamp,
    combine,
    effective_rules,
    rate_limit,
    replicas_for_metric,
    stabilize,
    within_tolerance,
)
from autoscaler.algorithms.types import (
    ConditionInfo,
    Decision,
    Forecast,
    History,
    MetricInput,
    MetricResult,
    PIDMetricState,
    PIDState,
    Rule,
    ScaleEvent,
    Step,
)
from autoscaler.api.horizontalautoscaler import (
    HorizontalAutoscalerSpec,
    MetricTarget,
    PIDMetricStatus,
    PIDParameters,
    PIDStatus,
)
from autoscaler.clock import to_datetime, to_timestamp

__all__ = [
    "MAX_DT_SECONDS",
    "STALE_STATE_SECONDS",
    "MetricOutput",
    "Terms",
    "Windup",
    "anti_windup",
    "decide",
    "filtered_derivative",
    "held_recommendation",
    "metric_output",
    "state_from_status",
    "state_to_status",
    "usage_ratio",
]

#: The longest interval integrated in one step, so a pause (a restart, a failed producer) does
#: not turn into one large integral jump.
MAX_DT_SECONDS = 60.0
#: A metric whose memory is older than this starts over (a fresh first sample, no kick).
STALE_STATE_SECONDS = 600.0


# ------------------------------------------------------------------------ per metric


def usage_ratio(target: MetricTarget, value: float, current_replicas: int) -> float:
    """The HPA usage ratio: ``value / (target × max(current, 1))`` for ``AverageValue``,
    ``value / target`` for ``Value`` and ``Utilization``."""
    if target.type == "AverageValue":
        return value / (target.amount * max(current_replicas, 1))
    return value / target.amount


def filtered_derivative(previous: float, slope: float, dt: float, filter_seconds: float) -> float:
    """First-order low-pass filter: ``previous + (1 − exp(−dt/τ)) × (slope − previous)``.

    ``τ`` is ``derivativeFilterSeconds``; with ``τ = 0`` the raw slope is used.
    """
    if filter_seconds <= 0:
        return slope
    return previous + (1.0 - math.exp(-dt / filter_seconds)) * (slope - previous)


@dataclass(frozen=True, slots=True)
class Terms:
    """One metric's output increment, in replicas, split by term."""

    p: float = 0.0
    i: float = 0.0
    d: float = 0.0

    @property
    def total(self) -> float:
        return self.p + self.i + self.d


@dataclass(frozen=True, slots=True)
class MetricOutput:
    """The PID outcome for one metric with a usable value."""

    #: The output this metric asks for (replicas, float): previous output + ``terms.total``.
    output: float
    terms: Terms
    #: The usage ratio (None from 0 replicas, where the proportional count is used).
    ratio: float | None
    #: The error after the dead band (0 within the tolerance).
    error: float
    within_tolerance: bool
    #: The metric's memory after this sample.
    state: PIDMetricState
    #: The metric's memory was empty or stale: this sample only initialised it.
    initialised: bool = False


def metric_output(
    metric: MetricInput,
    value: float,
    previous: PIDMetricState | None,
    base: float,
    current_replicas: int,
    gains: PIDParameters,
    up_tolerance: float,
    down_tolerance: float,
    now: float,
) -> MetricOutput:
    """Rules 1–3 for one metric: the error, the dead band and the velocity-form increment.

    ``base`` is the previous output the increment is added to; ``previous`` the metric's memory
    (None on its first sample). Returns the new output and memory; the output is never negative.
    """
    target = metric.target
    scale = max(current_replicas, 1)
    if current_replicas == 0:
        # Scale from zero: no ratio to control; take the proportional count and start from it.
        start = replicas_for_metric(metric, 0).recommendation or 0
        state = PIDMetricState(metric.name, 0.0, value, 0.0, now)
        return MetricOutput(float(start), Terms(), None, 0.0, False, state, True)

    ratio = usage_ratio(target, value, current_replicas)
    within = within_tolerance(ratio, up_tolerance, down_tolerance)
    error = 0.0 if within else ratio - 1.0
    fresh = previous is None or now - previous.time > STALE_STATE_SECONDS
    if fresh or previous is None:
        state = PIDMetricState(metric.name, error, value, 0.0, now, scale)
        output = float(current_replicas) if within else base
        return MetricOutput(output, Terms(), ratio, error, within, state, True)
    if now <= previous.time:
        # Evaluated again at the same instant: nothing has elapsed; keep the memory as it is so
        # the change is applied by the next evaluation.
        output = float(current_replicas) if within else base
        return MetricOutput(output, Terms(), ratio, error, within, previous)

    elapsed = now - previous.time
    dt = min(elapsed, MAX_DT_SECONDS)
    slope = (value - previous.measurement) / elapsed
    derivative = filtered_derivative(
        previous.derivative, slope, elapsed, gains.derivative_filter_seconds
    )
    state = PIDMetricState(metric.name, error, value, derivative, now, scale)
    if within:
        return MetricOutput(float(current_replicas), Terms(), ratio, error, True, state)
    # The derivative in ratio units per second, with today's target (and count, for AverageValue).
    norm = target.amount * (scale if target.type == "AverageValue" else 1)
    # An AverageValue error is relative to the count it was computed with: seen from today's
    # count, a scale step between two readings must not look like a change of the signal.
    previous_error = previous.error
    if target.type == "AverageValue" and previous.replicas and previous.replicas != scale:
        previous_error = (1.0 + previous.error) * previous.replicas / scale - 1.0
    terms = Terms(
        p=scale * gains.kp * (error - previous_error),
        i=scale * gains.ki * error * dt,
        d=scale * gains.kd * (derivative - previous.derivative) / norm,
    )
    return MetricOutput(max(base + terms.total, 0.0), terms, ratio, error, False, state)


def _ceil(value: float) -> int:
    if not value < MAX_RECOMMENDATION:
        return MAX_RECOMMENDATION
    return max(0, math.ceil(value - CEIL_EPSILON))


# ------------------------------------------------------------------------ anti-windup


@dataclass(frozen=True, slots=True)
class Windup:
    """The outcome of :func:`anti_windup`."""

    #: The output to remember.
    output: float
    #: A limit cut the PID's own recommendation: the output was brought back to the applied
    #: count and the metrics' error memories restart at 0 (bumpless: the next evaluation moves
    #: from the applied count by ``kp × S × e`` plus the integral, not by what was cut off).
    cut: bool


def anti_windup(
    output: float,
    integral: float,
    *,
    stabilized: int,
    desired: int,
    held: Literal["up", "down"] | None,
    proportional: int | None,
    min_replicas: int,
    max_replicas: int,
) -> Windup:
    """Rule 7: what to remember after the limits, from the PID's unlimited ``output``.

    ``integral`` is the winning metric's integral increment of this step, ``stabilized`` the
    count after stabilization, ``desired`` the final count, ``held`` the direction a
    stabilization window held (if it did) and ``proportional`` the HPA recommendation of the
    same metrics.

    * Cut by a rate policy or min/max (the PID asked for more than ``desired`` on the way up, or
      fewer on the way down): back-calculation. The output becomes ``desired`` and nothing of
      this step's increment is remembered (the integral is not integrated, and
      :attr:`Windup.cut` asks for the error memories to restart).
    * Held by a stabilization window: the integral may move the output up to ``proportional``,
      not beyond it (and not at all if the output was already beyond it), so it does not wind up
      while the count waits.
    * Always: the output stays within ``[min_replicas, max_replicas]``.
    """
    own = _ceil(output)
    if (desired < stabilized and own > desired) or (desired > stabilized and own < desired):
        return Windup(float(desired), True)
    result = output
    if proportional is not None:
        before = output - integral
        if held == "down" and integral < 0:
            result = before if before <= proportional else max(output, float(proportional))
        elif held == "up" and integral > 0:
            result = before if before >= proportional else min(output, float(proportional))
    return Windup(min(max(result, float(min_replicas)), float(max_replicas)), False)


def held_recommendation(
    recommendation: int, stabilized: int, proportional: int | None
) -> tuple[Literal["up", "down"] | None, int]:
    """While a stabilization window holds the count, the recommendation it records is brought
    to the proportional (HPA) one when that is closer to the held count: so when the window lets
    go, the count lands where the HPA would put it, not past it.

    Returns the direction held (None when nothing was held) and the recommendation to record.
    """
    if stabilized > recommendation:
        if proportional is not None and proportional > recommendation:
            return "down", min(proportional, stabilized)
        return "down", recommendation
    if stabilized < recommendation:
        if proportional is not None and proportional < recommendation:
            return "up", max(proportional, stabilized)
        return "up", recommendation
    return None, recommendation


# ------------------------------------------------------------------------ status


def state_to_status(state: PIDState) -> PIDStatus:
    """The PID state as the status block ``status.pid``."""
    return PIDStatus(
        output=state.output,
        applied=state.applied,
        time=to_datetime(state.time),
        metrics=[
            PIDMetricStatus(
                name=m.name,
                error=m.error,
                measurement=m.measurement,
                derivative=m.derivative,
                time=to_datetime(m.time),
                replicas=m.replicas,
            )
            for m in state.metrics
        ],
    )


def state_from_status(status: PIDStatus | None) -> PIDState | None:
    """The PID state back from ``status.pid`` (None when there is none)."""
    if status is None:
        return None
    return PIDState(
        output=status.output,
        applied=status.applied,
        time=to_timestamp(status.time),
        metrics=tuple(
            PIDMetricState(
                m.name, m.error, m.measurement, m.derivative, to_timestamp(m.time), m.replicas
            )
            for m in status.metrics
        ),
    )


# ------------------------------------------------------------------------ messages


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + _num(abs(round(value, 3)))


def _pid_step(result: MetricResult, out: MetricOutput, metric: MetricInput) -> tuple[Rule, str]:
    assert metric.value is not None
    shown = f"metric {result.name}={_num(metric.value)} {_target_text(result)}"
    n = result.recommendation
    if out.ratio is None:
        return "metrics", f"{shown} → {n} replicas (scale from zero)"
    if out.within_tolerance:
        return (
            "tolerance",
            f"{shown}: ratio {out.ratio:.3f} within tolerance → holds {n}",
        )
    terms = out.terms
    if out.initialised:
        detail = "first sample, no kick"
    else:
        detail = f"P {_signed(terms.p)}, I {_signed(terms.i)}, D {_signed(terms.d)}"
    return (
        "metrics",
        f"{shown}: error {_signed(out.error)}, PID output {_num(round(out.output, 3))} "
        f"({detail}) → {n} replicas",
    )


# ------------------------------------------------------------------------ decide


def _previous_states(history: History) -> dict[str, PIDMetricState]:
    if history.pid is None:
        return {}
    return {m.name: m for m in history.pid.metrics}


def decide(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    history: History,
    now: float,
    forecasts: Sequence[Forecast] = (),
) -> Decision:
    """One PID evaluation: rules 1–7 of the module docstring.

    Returns the desired count, each metric's result, the steps that shaped the value (the last one
    is what limited it), the ``AbleToScale`` / ``ScalingActive`` / ``ScalingLimited`` conditions
    and the updated history: the PID state, the unstabilized recommendation (whenever the
    stabilization step ran) and a scale event ``(now, desired − current)`` whenever the count
    changes. ``forecasts`` (predictive scaling) can only raise the recommendation.

    Raises ``ValueError`` when ``current_replicas`` is negative.
    """
    if current_replicas < 0:
        raise ValueError(f"current_replicas must not be negative, got {current_replicas}")
    current = current_replicas
    gains = spec.algorithm.pid_parameters
    up_rules, down_rules = effective_rules(spec.behavior)
    up_tolerance, down_tolerance = _tolerance(up_rules), _tolerance(down_rules)
    previous = _previous_states(history)
    state = history.pid
    base = (
        state.output
        if state is not None and state.applied == current and current > 0
        else float(current)
    )

    # 1–4. per metric: failures and fallback as proportional, the PID output otherwise
    proportional_results: list[MetricResult] = []
    results: list[MetricResult] = []
    outputs: list[MetricOutput | None] = []
    for metric in metrics:
        plain = replicas_for_metric(
            metric,
            current,
            up_tolerance=up_tolerance,
            down_tolerance=down_tolerance,
            fallback=spec.fallback,
        )
        proportional_results.append(plain)
        if plain.reason in ("Failed", "Fallback") or metric.value is None:
            results.append(plain)
            outputs.append(None)
            continue
        out = metric_output(
            metric,
            metric.value,
            previous.get(metric.name),
            base,
            current,
            gains,
            up_tolerance,
            down_tolerance,
            now,
        )
        outputs.append(out)
        results.append(
            MetricResult(
                metric.name,
                metric.value,
                metric.target.type,
                metric.target.amount,
                _ceil(out.output),
                None,
                "WithinTolerance" if out.within_tolerance else "Computed",
            )
        )

    combined = combine(results, current)
    total, failed = len(results), combined.failed
    steps: list[Step] = []
    recommendations = history.recommendations
    stabilized: Stabilization | None = None
    limit_reason: LimitReason = "DesiredWithinRange"
    recommendation: int | None = combined.recommendation
    new_output: float | None = None
    held: Literal["up", "down"] | None = None
    proportional_recommendation: int | None = None

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
        winner = outputs[index]
        if winner is None:  # a fallback won
            rule, message = _metric_step(
                combined.winner, None, metrics[index], current, spec.fallback
            )
        else:
            rule, message = _pid_step(combined.winner, winner, metrics[index])
        if combined.valid > 1:
            message += f" (highest of {combined.valid} metrics)"
        # 5. a forecast can only raise the recommendation
        best = max(forecasts, key=lambda f: f.recommendation, default=None)
        raised = best is not None and best.recommendation > recommendation
        if failed and max(recommendation, best.recommendation if best else 0) >= current:
            message += f"; {_of(len(failed), total)} failed, scaling on the valid ones"
        steps.append(Step(rule, current, recommendation, message))
        if best is not None and raised:
            steps.append(forecast_step(best, recommendation))
            recommendation = best.recommendation

        if failed and recommendation < current:
            # Like the proportional algorithm: never scale down on partial data.
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
            new_output = float(current)
        else:
            active = ConditionInfo(
                "ScalingActive",
                "True",
                "ValidMetricFound",
                "the autoscaler was able to compute the replica count from metric "
                f"{combined.winner.name}",
            )
            # 6. stabilization, rate policies (bounded by min/max there too)
            up_window, down_window = _window(up_rules, "up"), _window(down_rules, "down")
            proportional_recommendation = combine(proportional_results, current).recommendation
            trial = stabilize(
                recommendation, current, history.recommendations, up_window, down_window, now
            )
            held, recorded = held_recommendation(
                recommendation, trial.replicas, proportional_recommendation
            )
            stabilized = stabilize(
                recorded, current, history.recommendations, up_window, down_window, now
            )
            recommendations = stabilized.recommendations
            step = _stabilization_step(recommendation, stabilized, up_window, down_window, now)
            if step is not None:
                if recorded != recommendation:
                    step = replace(
                        step,
                        message=step.message
                        + f"; records {recorded} (the proportional count) for {recommendation}",
                    )
                steps.append(step)
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

    # 6. minReplicas / maxReplicas last
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

    # 7. anti-windup: the output remembered for the next evaluation
    cut = False
    if stabilized is not None and recommendation is not None:
        pid_outputs = [o for o in outputs if o is not None]
        if pid_outputs:
            top = max(pid_outputs, key=lambda o: o.output)
            windup = anti_windup(
                top.output,
                top.terms.i,
                stabilized=stabilized.replicas,
                desired=desired,
                held=held,
                proportional=proportional_recommendation,
                min_replicas=spec.min_replicas,
                max_replicas=spec.max_replicas,
            )
            new_output, cut = windup.output, windup.cut
        else:
            new_output = float(desired)
    metric_states = {m.name: m for m in (history.pid.metrics if history.pid else ())}
    for output in outputs:
        if output is not None:
            memory = output.state
            # A cut restarts the error memory at 0 for the applied count (bumpless).
            metric_states[memory.name] = (
                replace(memory, error=0.0, replicas=max(desired, 1)) if cut else memory
            )
    if new_output is None:
        pid_state = history.pid  # nothing usable: remember what we had
    else:
        pid_state = PIDState(
            output=new_output,
            applied=desired,
            time=now,
            metrics=tuple(s for s in metric_states.values() if now - s.time <= STALE_STATE_SECONDS),
        )

    # scale events still inside the longest policy period, plus this change
    periods = [
        p.period_seconds for p in (*_policies(up_rules, "up"), *_policies(down_rules, "down"))
    ]
    cutoff = now - max(periods)
    events = tuple(event for event in history.scale_events if event.time > cutoff)
    if desired != current:
        events = (*events, ScaleEvent(now, desired - current))

    able = _able_to_scale(current, desired, recommendation, stabilized, up_rules, down_rules)
    return Decision(
        current_replicas=current,
        desired_replicas=desired,
        metrics=tuple(results),
        steps=tuple(steps),
        conditions=(able, active, _scaling_limited(limit_reason, steps)),
        history=History(recommendations, events, pid=pid_state, forecasts=history.forecasts),
        forecasts=tuple(forecasts),
    )
