"""MetricsProducer: one signal source (exactly one of the source fields is set)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from autoscaler.api.common import GROUP_VERSION, Condition, Model, ObjectMeta
from autoscaler.api.quantity import Quantity

SOURCE_FIELDS = ("queue", "cloud_watch", "schedule", "reserved_capacity", "pending_capacity")
_STATISTIC = re.compile(
    r"^(SampleCount|Average|Sum|Minimum|Maximum|IQM|"
    r"(p|tm|wm|tc|ts)(\d{1,2}(\.\d{1,2})?|100))$"
)


def check_cron(expression: str) -> str:
    """Validate a 5-field cron expression (minute hour day-of-month month day-of-week)."""
    from croniter import croniter

    if len(expression.split()) != 5:
        raise ValueError(
            f"{expression!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return expression


class QueueSpec(Model):
    type: Literal["AWSSQSQueue"] = Field(description="The queue service.")
    id: str = Field(min_length=1, description="Queue URL or ARN.")
    include_in_flight: bool = Field(
        default=True, description="Count in-flight (received, not yet deleted) messages."
    )
    include_delayed: bool = Field(default=False, description="Count delayed messages.")
    oldest_message_age: bool = Field(
        default=False,
        description="Also read ApproximateAgeOfOldestMessage from CloudWatch.",
    )
    region: str | None = Field(default=None, description="AWS region (default: boto3 chain).")


class Dimension(Model):
    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


class CloudWatchSpec(Model):
    namespace: str = Field(min_length=1)
    metric_name: str = Field(min_length=1)
    dimensions: list[Dimension] = Field(default_factory=list, max_length=30)
    statistic: str = Field(default="Average", description="Average, Sum, p99, tm90 ...")
    period_seconds: int = Field(default=60, ge=1, le=86400)
    collection_window_seconds: int = Field(default=300, ge=1, le=86400 * 15)
    end_offset_seconds: int = Field(default=0, ge=0, le=86400)
    empty_value: float | None = Field(
        default=None,
        description="Value to report when no datapoint is found; unset means an error.",
    )
    region: str | None = None

    @field_validator("statistic")
    @classmethod
    def _statistic(cls, value: str) -> str:
        if not _STATISTIC.match(value):
            raise ValueError(
                f"{value!r} is not a CloudWatch statistic "
                "(SampleCount, Average, Sum, Minimum, Maximum, or a percentile such as p99)"
            )
        return value

    @field_validator("period_seconds")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (1, 5, 10, 30) and value % 60 != 0:
            raise ValueError("must be 1, 5, 10, 30 or a multiple of 60")
        return value

    @model_validator(mode="after")
    def _window(self) -> CloudWatchSpec:
        if self.collection_window_seconds < self.period_seconds:
            raise ValueError("collectionWindowSeconds must be at least periodSeconds")
        return self


class ScheduleBehavior(Model):
    start: str = Field(description="5-field cron expression: when the window opens.")
    end: str = Field(description="5-field cron expression: when the window closes.")
    replicas: int = Field(ge=0, le=100000)

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class ScheduleSpec(Model):
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")
    default_replicas: int = Field(ge=0, le=100000)
    behaviors: list[ScheduleBehavior] = Field(default_factory=list, max_length=100)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
            ) from exc
        return value


class ReservedCapacitySpec(Model):
    node_selector: dict[str, str] = Field(
        description="Labels a node must carry to be counted (empty: every node)."
    )


class Taint(Model):
    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeShape(Model):
    """What one node of the group offers, so a group can scale from zero."""

    capacity: dict[str, Quantity] = Field(
        description="Allocatable resources of one node: cpu, memory, pods, nvidia.com/gpu."
    )
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)


class PendingCapacitySpec(Model):
    node_group: str = Field(
        min_length=1, description="Name of a ScalableNodeGroup (same namespace)."
    )
    node_shape: NodeShape | None = Field(
        default=None, description="Node shape; learned from an existing node when unset."
    )
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Labels that identify the group's nodes (default: nodeShape.labels).",
    )


class MetricsProducerSpec(Model):
    interval_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between two observations."
    )
    queue: QueueSpec | None = None
    cloud_watch: CloudWatchSpec | None = None
    schedule: ScheduleSpec | None = None
    reserved_capacity: ReservedCapacitySpec | None = None
    pending_capacity: PendingCapacitySpec | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> MetricsProducerSpec:
        chosen = [name for name in SOURCE_FIELDS if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = "queue, cloudWatch, schedule, reservedCapacity, pendingCapacity"
            found = ", ".join(chosen) or "none"
            raise ValueError(f"exactly one of {names} must be set (found: {found})")
        return self

    @property
    def source(self) -> str:
        """The camelCase name of the one source field that is set."""
        for name in SOURCE_FIELDS:
            if getattr(self, name) is not None:
                head, *rest = name.split("_")
                return head + "".join(part.title() for part in rest)
        raise AssertionError("validated model has a source")


class SignalValue(Model):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    value: float
    timestamp: datetime


class QueueStatus(Model):
    length: float | None = None
    oldest_message_age_seconds: float | None = None


class ScheduledCapacityStatus(Model):
    current_value: int | None = None
    next_value: int | None = None
    next_value_time: datetime | None = None


class ReservedCapacityStatus(Model):
    nodes: int | None = Field(default=None, description="Ready, schedulable nodes counted.")
    utilization: dict[str, float] = Field(
        default_factory=dict, description="Percent of capacity reserved, by resource."
    )
    reserved: dict[str, float] = Field(
        default_factory=dict, description="Requests of the pods on those nodes, by resource."
    )
    capacity: dict[str, float] = Field(
        default_factory=dict, description="Allocatable of those nodes, by resource."
    )


class NodeShapeStatus(Model):
    source: Literal["Declared", "Learned"]
    node: str | None = Field(default=None, description="The node a learned shape comes from.")
    capacity: dict[str, float] = Field(default_factory=dict)


class PendingCapacityStatus(Model):
    pending_pods: int | None = Field(
        default=None, description="Pending-unschedulable pods a node of the group could host."
    )
    nodes_needed: int | None = Field(
        default=None, description="Nodes the group needs: busy and starting ones plus new ones."
    )
    new_nodes: int | None = Field(default=None, description="New nodes the pending pods need.")
    group_nodes: int | None = Field(default=None, description="Nodes of the group now.")
    busy_nodes: int | None = Field(default=None, description="Nodes running workload pods.")
    starting_nodes: int | None = Field(
        default=None, description="Nodes starting: not Ready, created less than 10 minutes ago."
    )
    oversized_pods: int | None = Field(
        default=None, description="Matching pods too large for one node of the shape."
    )
    shape: NodeShapeStatus | None = None


class ProducerError(Model):
    code: str
    message: str


class MetricsProducerStatus(Model):
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    last_observed_time: datetime | None = None
    signals: list[SignalValue] = Field(default_factory=list)
    queue: QueueStatus | None = None
    scheduled_capacity: ScheduledCapacityStatus | None = None
    reserved_capacity: ReservedCapacityStatus | None = None
    pending_capacity: PendingCapacityStatus | None = None
    values: dict[str, float] | None = Field(
        default=None, description="Other latest values by signal name."
    )
    error: ProducerError | None = Field(default=None, description="The last observation's error.")
    conditions: list[Condition] = Field(default_factory=list)


class MetricsProducer(Model):
    api_version: Literal["autoscaler.dev/v1alpha1"] = GROUP_VERSION
    kind: Literal["MetricsProducer"] = "MetricsProducer"
    metadata: ObjectMeta
    spec: MetricsProducerSpec
    status: MetricsProducerStatus | None = None
