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
    "stabilization",  # stabilization window held the value
    "policy",  # a Pods/Percent rate policy limited the change (or selectPolicy Disabled)
    "minMax",  # minReplicas / maxReplicas clamp
    "nodeGroupBounds",  # the node group's own MinSize/MaxSize (applied by the controller)
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
class History:
    """What the algorithm remembers between evaluations (persisted in status across restarts)."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()


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

    @property
    def changed(self) -> bool:
        return self.desired_replicas != self.current_replicas

    @property
    def reasons(self) -> list[str]:
        return [step.message for step in self.steps]
