"""Values the algorithms consume and produce. Pure data: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from autoscaler.api.horizontalautoscaler import MetricTarget

#: The rules that can shape a decision, in the order they are applied.
Rule = Literal[
    "metrics",  # per-metric recommendations combined (max)
    "tolerance",  # a metric within tolerance of its target keeps the current count
    "partialFailure",  # some metrics failed: scale up on the valid ones, never down
    "fallback",  # a metric failed failureThreshold times: its recommendation is fallback.replicas
    "forecast",  # predictive scaling raised the recommendation to what a metric will need ahead
    "stabilization",  # stabilization window held the value
    "policy",  # a Pods/Percent rate policy limited the change (or selectPolicy Disabled)
    "minMax",  # minReplicas / maxReplicas clamp
    "activation",  # at 0 replicas and no activation value above its threshold: stays at 0
    "nodeGroupBounds",  # the node group's own MinSize/MaxSize (applied by the controller)
    # Operator controls and safety limits, applied by the loop (autoscaler.controls):
    "nodeGroupLimit",  # the node group's spec.limits: step sizes, scale-in only when stable
    "budget",  # loop.max_total_nodes across all node groups cut a scale-up
    "override",  # an operator pinned the node group's count
    "paused",  # an operator paused the autoscaler: the count stays
    "dryRun",  # dry-run mode: decided and recorded, never applied
]


@dataclass(frozen=True, slots=True)
class MetricInput:
    """One metric of an autoscaler as observed now. ``value`` is None when the read failed."""

    name: str
    target: MetricTarget
    value: float | None
    error: str | None = None
    #: Consecutive failed reads of this metric, including this one.
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """An unstabilized recommendation recorded for the stabilization windows."""

    time: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A change of the desired count, recorded for the rate policies. ``change`` is signed."""

    time: float
    change: int


@dataclass(frozen=True, slots=True)
class PIDMetricState:
    """What the PID remembers about one metric (see :mod:`autoscaler.algorithms.pid`)."""

    #: The metric's display name; state is matched to metrics by name.
    name: str
    #: The error ``e = r − 1`` of the last evaluation (0 inside the tolerance dead band).
    error: float
    #: The last raw value read (the derivative is taken on it, never on the error).
    measurement: float
    #: The low-pass filtered derivative of the raw value, in value units per second.
    derivative: float
    #: When ``measurement`` was read (epoch seconds).
    time: float
    #: The replica count ``error`` was computed with (an AverageValue error depends on it), so a
    #: scale step between two readings is not mistaken for a change of the signal; None when
    #: unknown, which skips that correction.
    replicas: int | None = None


@dataclass(frozen=True, slots=True)
class PIDState:
    """The PID controller's memory: its float output and each metric's last error and value."""

    #: The controller output ``u`` in replicas (a float; the decision is ``ceil(u)``), after
    #: anti-windup. The next evaluation adds its increment to it.
    output: float
    #: The count decided with that output. When the current count differs (an operator, the node
    #: group's bounds) the next evaluation starts from the current count instead of ``output``.
    applied: int
    #: When the output was computed (epoch seconds).
    time: float
    metrics: tuple[PIDMetricState, ...] = ()


@dataclass(frozen=True, slots=True)
class SeasonProfile:
    """A learned seasonal profile: the typical value of the signal per bin of one period."""

    period_seconds: int
    bin_seconds: int
    #: When the first sample went in; the profile is used once a full period has passed.
    start: float
    #: Mean value per bin (None until a sample fell into the bin).
    means: tuple[float | None, ...]
    #: Seconds of signal behind each mean, capped at the remembered history per bin.
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class MethodScore:
    """How well one forecasting method did on this signal: mean absolute error at the horizon."""

    method: str
    error: float
    #: Seconds of scored forecasts behind ``error`` (capped, so old errors fade out).
    weight: float


@dataclass(frozen=True, slots=True)
class PendingForecast:
    """Forecasts made at ``time`` by each method, scored once ``time + horizon`` has come."""

    time: float
    values: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class ForecastModel:
    """What predictive scaling has learned about one metric (bounded in size, serializable)."""

    name: str
    #: When the last sample went in (epoch seconds).
    time: float
    #: The horizon the pending forecasts and the scores were made for.
    horizon_seconds: float
    last_value: float
    #: Holt's smoothed level and trend (value units per second).
    level: float
    trend: float
    seasons: tuple[SeasonProfile, ...] = ()
    pending: tuple[PendingForecast, ...] = ()
    scores: tuple[MethodScore, ...] = ()


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast of one metric at ``now + horizon_seconds``, and what it asks for."""

    name: str
    #: The metric's value now.
    current: float
    #: The forecast value at the horizon.
    value: float
    horizon_seconds: float
    #: The method that made it (``Persistence``, ``Trend`` or ``Seasonal/<period>s``).
    method: str
    #: Replicas the metric needs for ``value`` (HPA rules, tolerance included).
    recommendation: int


@dataclass(frozen=True, slots=True)
class History:
    """What the algorithm remembers between evaluations (persisted in status across restarts)."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    #: The PID controller's state (algorithm ``PID`` only).
    pid: PIDState | None = None
    #: Predictive scaling: one learned model per metric (``algorithm.predictive`` only).
    forecasts: tuple[ForecastModel, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricResult:
    """The outcome for one metric."""

    name: str
    value: float | None
    target_type: str
    target: float
    #: Replicas this metric alone asks for; None when it failed (and no fallback applies).
    recommendation: int | None
    error: str | None = None
    #: Why: "Computed", "WithinTolerance", "Fallback" or "Failed".
    reason: str = "Computed"


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that changed (or held) the value on its way to the result."""

    rule: Rule
    before: int
    after: int
    message: str


@dataclass(frozen=True, slots=True)
class ConditionInfo:
    """A condition to report: ``AbleToScale``, ``ScalingActive`` or ``ScalingLimited``."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one evaluation."""

    current_replicas: int
    desired_replicas: int
    metrics: tuple[MetricResult, ...]
    #: The rules that shaped the result, in the order applied.
    steps: tuple[Step, ...]
    conditions: tuple[ConditionInfo, ...]
    #: The updated history (with this recommendation and, if the count changed, a scale event).
    history: History = field(default_factory=History)
    #: Predictive scaling: the forecast of each metric made in this evaluation.
    forecasts: tuple[Forecast, ...] = ()

    @property
    def changed(self) -> bool:
        return self.desired_replicas != self.current_replicas

    @property
    def reasons(self) -> list[str]:
        return [step.message for step in self.steps]
