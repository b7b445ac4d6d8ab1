"""HorizontalAutoscaler: metrics and targets → a replica count for one ScalableNodeGroup."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from autoscaler.api.common import GROUP_VERSION, Condition, Model, ObjectMeta
from autoscaler.api.quantity import Quantity

#: HPA's default tolerance around the target before any scaling happens.
DEFAULT_TOLERANCE = 0.1
#: Default PID gains (``docs/algorithm.md`` explains how they were chosen).
DEFAULT_PID_KP = 0.2
DEFAULT_PID_KI = 0.05
DEFAULT_PID_KD = 0.0
_SIGNAL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class ScaleTargetRef(Model):
    api_version: Literal["autoscaler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["ScalableNodeGroup"] = "ScalableNodeGroup"
    name: str = Field(min_length=1)


class ProducerMetricSource(Model):
    """A signal read in-process from a MetricsProducer in the same namespace."""

    name: str = Field(min_length=1, description="MetricsProducer name.")
    metric: str | None = Field(
        default=None,
        pattern=_SIGNAL_NAME,
        description="Signal name (default: the producer's main signal).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Select one signal among several with this name."
    )


class PrometheusMetricSource(Model):
    """An instant PromQL query that must return exactly one sample."""

    query: str = Field(min_length=1)
    server_url: str | None = Field(default=None, description="Override of the service setting.")
    when_empty: Literal["Zero", "Fail"] = Field(
        default="Fail",
        description="When the query returns no sample, or NaN or ±Inf: use 0, or fail the metric.",
    )

    @field_validator("server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+(/\S*)?$", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class MetricTarget(Model):
    """HPA MetricTarget: ``Value``, ``AverageValue`` (per node) or ``Utilization`` (percent)."""

    type: Literal["Value", "AverageValue", "Utilization"]
    value: Quantity | None = None
    average_value: Quantity | None = None
    average_utilization: float | None = Field(default=None, description="Percent, e.g. 70.")

    @model_validator(mode="after")
    def _field_for_type(self) -> MetricTarget:
        needed = {
            "Value": "value",
            "AverageValue": "average_value",
            "Utilization": "average_utilization",
        }[self.type]
        camel = {"value": "value", "average_value": "averageValue"}.get(
            needed, "averageUtilization"
        )
        amount = getattr(self, needed)
        if amount is None:
            raise ValueError(f"target type {self.type} needs {camel}")
        if amount <= 0:
            raise ValueError(f"{camel} must be greater than 0")
        for other in ("value", "average_value", "average_utilization"):
            if other != needed and getattr(self, other) is not None:
                raise ValueError(f"target type {self.type} takes only {camel}")
        return self

    @property
    def amount(self) -> float:
        """The target number for this target type."""
        value = {
            "Value": self.value,
            "AverageValue": self.average_value,
            "Utilization": self.average_utilization,
        }[self.type]
        assert value is not None
        return value


class MetricSource(Model):
    """Where a value is read: a MetricsProducer's signal or a Prometheus query (exactly one)."""

    producer: ProducerMetricSource | None = None
    prometheus: PrometheusMetricSource | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> MetricSource:
        if (self.producer is None) == (self.prometheus is None):
            raise ValueError("exactly one of producer, prometheus must be set")
        return self

    @property
    def display_name(self) -> str:
        if self.producer is not None:
            return f"{self.producer.name}/{self.producer.metric or 'default'}"
        assert self.prometheus is not None
        return f"prometheus:{self.prometheus.query}"


class MetricSpec(MetricSource):
    """A metric that sizes the node group: a source and a target."""

    target: MetricTarget


class ActivationMetric(MetricSource):
    """A condition for leaving zero replicas (like KEDA's activation thresholds): the value of
    the source must be above ``above``."""

    above: Quantity = Field(
        ge=0,
        description="The autoscaler is active while the value is above this (strictly).",
    )


class ScalingPolicy(Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, le=100000)
    period_seconds: int = Field(gt=0, le=1800)


class ScalingRules(Model):
    """HPA ``HPAScalingRules`` for one direction."""

    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[ScalingPolicy] | None = Field(default=None, max_length=10)
    tolerance: float | None = Field(default=None, ge=0, le=10)

    @field_validator("policies")
    @classmethod
    def _not_empty(cls, value: list[ScalingPolicy] | None) -> list[ScalingPolicy] | None:
        if value is not None and not value:
            raise ValueError("must list at least one policy (or be left out for the default)")
        return value


class Behavior(Model):
    scale_up: ScalingRules = Field(default_factory=ScalingRules)
    scale_down: ScalingRules = Field(default_factory=ScalingRules)


def default_scale_up() -> ScalingRules:
    """HPA default: no stabilization; 4 nodes or 100 % per 15 s, whichever is more."""
    return ScalingRules(
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=[
            ScalingPolicy(type="Pods", value=4, period_seconds=15),
            ScalingPolicy(type="Percent", value=100, period_seconds=15),
        ],
        tolerance=DEFAULT_TOLERANCE,
    )


def default_scale_down() -> ScalingRules:
    """HPA default: 300 s stabilization; down by up to 100 % per 15 s."""
    return ScalingRules(
        stabilization_window_seconds=300,
        select_policy="Max",
        policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)],
        tolerance=DEFAULT_TOLERANCE,
    )


class PIDParameters(Model):
    """Gains of the velocity-form PID (``docs/algorithm.md``, "PID").

    The error of a metric is its usage ratio minus one (``e = r − 1``); the output is a replica
    count. Per evaluation the output moves by
    ``S × (kp × Δe + ki × e × dt + kd × Δd)`` replicas, where ``S = max(current, 1)`` and ``d`` is
    the filtered derivative of the measurement in ratio units per second. ``ki`` must be above 0:
    the velocity form has no other memory of where the target is.
    """

    kp: float = Field(
        default=DEFAULT_PID_KP,
        ge=0,
        le=100,
        description="Proportional gain: replicas per replica per unit change of the error.",
    )
    ki: float = Field(
        default=DEFAULT_PID_KI,
        ge=0,
        le=100,
        description="Integral gain, per second: 1/ki is the time the output takes to close a "
        "steady error (HPA-like when 1/ki equals the evaluation interval).",
    )
    kd: float = Field(
        default=DEFAULT_PID_KD,
        ge=0,
        le=3600,
        description="Derivative gain, in seconds, on the measurement (not the error).",
    )
    derivative_filter_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Time constant of the first-order low-pass filter on the derivative.",
    )

    @model_validator(mode="after")
    def _integral_action(self) -> PIDParameters:
        if self.kp == 0 and self.ki == 0 and self.kd == 0:
            raise ValueError("all gains are 0: set ki (and optionally kp, kd) above 0")
        if self.ki == 0:
            raise ValueError(
                "ki must be greater than 0: the velocity-form PID needs integral action to find "
                "the target (with ki 0 it never corrects an error present at the start or "
                "left by a limit)"
            )
        return self


class PredictiveScaling(Model):
    """Scale ahead: forecast each metric ``horizonSeconds`` ahead and never size below it.

    The forecast can only raise the recommendation (``max(current data, forecast)``); it never
    scales in on its own. See ``docs/algorithm.md``, "Predictive scaling".
    """

    enabled: bool = True
    horizon_seconds: int = Field(
        default=120,
        ge=1,
        le=3600,
        description="How far ahead, in seconds: the node startup time (request to ready).",
    )
    history_seconds: int = Field(
        default=7 * 86400,
        ge=3600,
        le=90 * 86400,
        description="How long a learned seasonal pattern is remembered, in seconds.",
    )
    method: Literal["Auto", "Trend", "Seasonal"] = Field(
        default="Auto",
        description="Auto: the method with the lowest measured error at the horizon on this "
        "signal, persistence (no forecast) included. Trend: Holt's linear trend. Seasonal: the "
        "learned seasonal profile (Trend until a full period has been seen).",
    )
    seasonal_periods_seconds: list[int] = Field(
        default_factory=lambda: [3600, 86400],
        min_length=1,
        max_length=3,
        description="Periods the seasonal profiles learn, in seconds (hourly and daily).",
    )

    @field_validator("seasonal_periods_seconds")
    @classmethod
    def _periods(cls, value: list[int]) -> list[int]:
        for period in value:
            if not 600 <= period <= 7 * 86400:
                raise ValueError(f"period {period} must be between 600 and 604800 seconds")
        if len(set(value)) != len(value):
            raise ValueError("periods must be distinct")
        return value


class Algorithm(Model):
    type: Literal["Proportional", "PID"] = "Proportional"
    pid: PIDParameters | None = None
    predictive: PredictiveScaling | None = None

    @model_validator(mode="after")
    def _gains_match_type(self) -> Algorithm:
        if self.pid is not None and self.type != "PID":
            raise ValueError("pid gains are only allowed with type PID")
        return self

    @property
    def pid_parameters(self) -> PIDParameters:
        """The PID gains, defaults filled in when ``pid`` is left out."""
        return self.pid if self.pid is not None else PIDParameters()

    @property
    def predictive_enabled(self) -> bool:
        return self.predictive is not None and self.predictive.enabled


class Fallback(Model):
    """What to do when a metric keeps failing (KEDA-style)."""

    failure_threshold: int = Field(default=3, ge=1, le=1000)
    replicas: int = Field(ge=0, le=100000)


class HorizontalAutoscalerSpec(Model):
    scale_target_ref: ScaleTargetRef
    min_replicas: int = Field(default=1, ge=0, le=100000)
    max_replicas: int = Field(ge=1, le=100000)
    metrics: list[MetricSpec] = Field(min_length=1, max_length=50)
    behavior: Behavior = Field(default_factory=Behavior)
    algorithm: Algorithm = Field(default_factory=Algorithm)
    fallback: Fallback | None = None
    activation: list[ActivationMetric] = Field(
        default_factory=list,
        max_length=10,
        description=(
            "Scale from zero only while one of these values is above its threshold (needs "
            "minReplicas 0). Empty: any recommendation above zero leaves zero."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> HorizontalAutoscalerSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError("maxReplicas must be greater than or equal to minReplicas")
        if self.activation and self.min_replicas != 0:
            raise ValueError(
                "activation needs minReplicas 0 (it only decides when to leave zero replicas)"
            )
        return self

    def sources(self) -> list[tuple[tuple[str | int, ...], MetricSource]]:
        """Every source the autoscaler reads with its field path: the metrics, then the
        activation conditions."""
        return [
            *((("metrics", i), m) for i, m in enumerate(self.metrics)),
            *((("activation", i), a) for i, a in enumerate(self.activation)),
        ]


class MetricStatus(Model):
    name: str
    value: float | None = None
    target_type: str
    target: float
    recommendation: int | None = None
    #: Computed, WithinTolerance, Fallback or Failed.
    reason: str | None = None
    error: str | None = None
    consecutive_failures: int = 0


class RecommendationRecord(Model):
    time: datetime
    replicas: int


class ScaleEventRecord(Model):
    time: datetime
    change: int = Field(description="Signed replica change: positive up, negative down.")


class PIDMetricStatus(Model):
    """The PID's memory of one metric."""

    name: str
    error: float
    measurement: float
    derivative: float = Field(description="Filtered derivative of the value, per second.")
    time: datetime
    replicas: int | None = Field(default=None, description="The count the error refers to.")


class PIDStatus(Model):
    """The PID controller state, so a restart continues where it stopped."""

    output: float = Field(description="Controller output in replicas (the decision is its ceil).")
    applied: int = Field(description="The count decided with that output.")
    time: datetime
    metrics: list[PIDMetricStatus] = Field(default_factory=list)


class SeasonStatus(Model):
    period_seconds: int = Field(gt=0)
    bin_seconds: int = Field(gt=0)
    start: datetime
    means: list[float | None]
    weights: list[float]

    @model_validator(mode="after")
    def _sizes(self) -> SeasonStatus:
        bins = self.period_seconds // self.bin_seconds
        if len(self.means) != bins or len(self.weights) != bins:
            raise ValueError(f"means and weights must have {bins} entries")
        return self


class MethodScoreStatus(Model):
    method: str
    error: float
    weight: float


class PendingForecastStatus(Model):
    time: datetime
    values: dict[str, float]


class ForecastModelStatus(Model):
    """What predictive scaling learned about one metric."""

    time: datetime
    horizon_seconds: float
    last_value: float
    level: float
    trend: float
    seasons: list[SeasonStatus] = Field(default_factory=list)
    pending: list[PendingForecastStatus] = Field(default_factory=list)
    scores: list[MethodScoreStatus] = Field(default_factory=list)


class ForecastStatus(Model):
    """The latest forecast of one metric and the model behind it."""

    name: str
    current: float | None = None
    value: float | None = Field(default=None, description="Forecast value at the horizon.")
    horizon_seconds: float | None = None
    method: str | None = None
    recommendation: int | None = None
    model: ForecastModelStatus


class PauseStatus(Model):
    """An operator paused the autoscaler: it observes and records but never changes its group."""

    by: str = Field(description="The authenticated identity that paused it.")
    since: datetime = Field(description="When it was paused.")
    reason: str = Field(default="", description="Why, as the operator wrote it.")


class HorizontalAutoscalerStatus(Model):
    observed_generation: int | None = None
    current_replicas: int | None = None
    desired_replicas: int | None = None
    last_scale_time: datetime | None = None
    current_metrics: list[MetricStatus] = Field(default_factory=list)
    #: The rules that shaped the last decision, in words.
    reasons: list[str] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    # History that the algorithm needs to survive a restart.
    recommendations: list[RecommendationRecord] = Field(default_factory=list)
    scale_events: list[ScaleEventRecord] = Field(default_factory=list)
    pid: PIDStatus | None = None
    forecasts: list[ForecastStatus] = Field(default_factory=list)
    paused: PauseStatus | None = Field(default=None, description="Set while paused.")


class HorizontalAutoscaler(Model):
    api_version: Literal["autoscaler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["HorizontalAutoscaler"] = "HorizontalAutoscaler"
    metadata: ObjectMeta
    spec: HorizontalAutoscalerSpec
    status: HorizontalAutoscalerStatus | None = None
