"""Fakes of our own protocols and spec builders shared by the tests."""

from __future__ import annotations

from typing import Any

from autoscaler.api import (
    BackendContext,
    HorizontalAutoscaler,
    MetricsProducer,
    NodeGroupState,
    Observation,
    ScalableNodeGroup,
    Signal,
)
from autoscaler.errors import AutoscalerError


class FakeProducer:
    """Returns ``value`` as its signal, or raises ``error`` when set."""

    def __init__(self, name: str = "queue_length", value: float = 0.0) -> None:
        self.name = name
        self.value = value
        self.error: AutoscalerError | None = None
        self.calls: list[float] = []

    def observe(self, now: float) -> Observation:
        self.calls.append(now)
        if self.error is not None:
            raise self.error
        return Observation((Signal(self.name, self.value, now),), {"queue": {"length": self.value}})


class FakeProvider:
    """An instant node group with optional bounds and a queue of errors to raise."""

    def __init__(
        self, desired: int = 1, min_size: int | None = None, max_size: int | None = None
    ) -> None:
        self.desired = desired
        self.min_size = min_size
        self.max_size = max_size
        self.errors: list[AutoscalerError] = []
        self.set_calls: list[int] = []

    def get_replicas(self) -> NodeGroupState:
        if self.errors:
            raise self.errors.pop(0)
        return NodeGroupState(self.desired, self.desired, self.min_size, self.max_size, True)

    def set_replicas(self, replicas: int) -> None:
        self.set_calls.append(replicas)
        self.desired = replicas


def node_group(name: str = "g", replicas: int | None = None, **spec: Any) -> ScalableNodeGroup:
    body: dict[str, Any] = {"type": "Simulated", "id": name, **spec}
    if replicas is not None:
        body["replicas"] = replicas
    return ScalableNodeGroup.model_validate({"metadata": {"name": name}, "spec": body})


def schedule_producer(name: str = "p", interval: float = 15.0) -> MetricsProducer:
    return MetricsProducer.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"intervalSeconds": interval, "schedule": {"defaultReplicas": 1}},
        }
    )


def autoscaler(
    name: str = "a",
    target: str = "g",
    producers: tuple[str, ...] = ("p",),
    average_value: float = 4,
    **spec: Any,
) -> HorizontalAutoscaler:
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": target},
        "minReplicas": 1,
        "maxReplicas": 20,
        "metrics": [
            {
                "producer": {"name": p, "metric": "queue_length"},
                "target": {"type": "AverageValue", "averageValue": average_value},
            }
            for p in producers
        ],
        **spec,
    }
    return HorizontalAutoscaler.model_validate({"metadata": {"name": name}, "spec": body})


class Backends:
    """Factories for the loop that hand out fakes by object name."""

    def __init__(self) -> None:
        self.producers: dict[str, FakeProducer] = {}
        self.providers: dict[str, FakeProvider] = {}

    def create_producer(self, resource: MetricsProducer, _: BackendContext) -> FakeProducer:
        return self.producers.setdefault(resource.metadata.name, FakeProducer())

    def create_provider(self, resource: ScalableNodeGroup, _: BackendContext) -> FakeProvider:
        return self.providers.setdefault(
            resource.metadata.name, FakeProvider(resource.spec.replicas or 1)
        )
