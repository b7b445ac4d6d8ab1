"""Scaling algorithms: pure functions from (spec, observations, history, now) to a decision.

* :mod:`~autoscaler.algorithms.proportional`: the Kubernetes HPA rules (``Proportional``).
* :mod:`~autoscaler.algorithms.pid`: a velocity-form PID inside the same rules (``PID``).
* :mod:`~autoscaler.algorithms.predictive`: forecasts that scale either one up ahead of time
  (``algorithm.predictive``).

:func:`decide_for` picks the function for a spec; :func:`decide` runs it. The history parts that
the algorithms add (PID state, forecast models) go to and from status with
:func:`history_status` and :func:`restore_history`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from autoscaler.algorithms import pid, predictive, proportional
from autoscaler.algorithms.predictive import Decide
from autoscaler.algorithms.types import Decision, Forecast, History, MetricInput
from autoscaler.api.horizontalautoscaler import (
    HorizontalAutoscalerSpec,
    HorizontalAutoscalerStatus,
)

__all__ = ["Decide", "decide", "decide_for", "history_status", "restore_history"]


def _pid_predictive(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    history: History,
    now: float,
) -> Decision:
    """PID with predictive scaling: the forecasts can only raise the PID's recommendation."""
    models, forecasts = predictive.forecast_metrics(
        spec, current_replicas, metrics, history.forecasts, now
    )
    decision = pid.decide(spec, current_replicas, metrics, history, now, forecasts)
    return Decision(
        current_replicas=decision.current_replicas,
        desired_replicas=decision.desired_replicas,
        metrics=decision.metrics,
        steps=decision.steps,
        conditions=decision.conditions,
        history=History(
            decision.history.recommendations,
            decision.history.scale_events,
            pid=decision.history.pid,
            forecasts=models,
        ),
        forecasts=forecasts,
    )


def decide_for(spec: HorizontalAutoscalerSpec) -> Decide:
    """The decision function for ``spec.algorithm``: its ``type`` (``Proportional`` or ``PID``),
    wrapped with predictive scaling when ``predictive`` is enabled."""
    if spec.algorithm.type == "PID":
        if spec.algorithm.predictive_enabled:
            return _pid_predictive
        return pid.decide
    if spec.algorithm.predictive_enabled:
        return predictive.decide_proportional
    return proportional.decide


def decide(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    history: History,
    now: float,
) -> Decision:
    """One evaluation with the algorithm the spec asks for (see :func:`decide_for`)."""
    return decide_for(spec)(spec, current_replicas, metrics, history, now)


def history_status(history: History, forecasts: Sequence[Forecast] = ()) -> dict[str, Any]:
    """The algorithm-specific history as status fields (``pid``, ``forecasts``), JSON-ready."""
    status: dict[str, Any] = {}
    if history.pid is not None:
        status["pid"] = pid.state_to_status(history.pid).to_dict()
    if history.forecasts:
        status["forecasts"] = [
            f.to_dict() for f in predictive.models_to_status(history.forecasts, forecasts)
        ]
    return status


def restore_history(status: HorizontalAutoscalerStatus, history: History) -> History:
    """``history`` with the parts :func:`history_status` wrote to ``status`` read back."""
    return replace(
        history,
        pid=pid.state_from_status(status.pid),
        forecasts=predictive.models_from_status(status.forecasts),
    )
