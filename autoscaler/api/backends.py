"""The two small protocols backends implement, and the values they exchange with the loop.

A *producer* observes one signal source and returns signals; a *provider* reads and sets the
replica count of one node group. Both are synchronous and may block on I/O: the loop runs them off
its own thread. Neither knows about the loop, the store or each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Seconds since the epoch, from the injected clock.
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Signal:
    """One observed value: ``queue_length{queue="jobs"} = 40`` at ``timestamp``."""

    name: str
    value: float
    timestamp: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one producer run returns: its signals and a status fragment for the resource.

    ``status`` uses the resource's camelCase status fields, e.g.
    ``{"scheduledCapacity": {"currentValue": 3, "nextValue": 6, "nextValueTime": ...}}``.
    """

    signals: tuple[Signal, ...]
    status: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Producer(Protocol):
    """Observes one signal source."""

    def observe(self, now: float) -> Observation:
        """Return the current signals; raise a ``RetryableError`` or ``PermanentError``."""
        ...


@dataclass(frozen=True, slots=True)
class NodeGroupState:
    """What a provider reads back from its node group."""

    desired: int
    ready: int
    min_size: int | None = None
    max_size: int | None = None
    #: Nothing is being added or removed and ready == desired.
    stable: bool = True
    message: str = ""


@runtime_checkable
class Provider(Protocol):
    """Reads and sets the size of one node group. Calls must be idempotent."""

    def get_replicas(self) -> NodeGroupState:
        """Desired and ready counts, the group's own bounds, and whether it is stable."""
        ...

    def set_replicas(self, replicas: int) -> None:
        """Ask the group for ``replicas`` nodes (already within the group's bounds)."""
        ...


class InMemory(Protocol):
    """An extra ability: a producer or provider whose calls never wait on I/O (its state is in
    memory, like ``Simulated`` and ``schedule``). The loop calls it on its own thread instead of
    handing each call to a worker thread and back."""

    in_memory: bool


def in_memory(backend: object) -> bool:
    """Whether ``backend`` says its calls never wait on I/O (see :class:`InMemory`)."""
    return getattr(backend, "in_memory", False) is True


def _aws_clients() -> Any:
    from autoscaler.aws import AWSClients

    return AWSClients()


def _kube_clients() -> Any:
    from autoscaler.kube import KubeClients

    return KubeClients()


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What the service hands every backend factory.

    ``aws`` is the service's shared :class:`autoscaler.aws.AWSClients` and ``kube`` its shared
    :class:`autoscaler.kube.KubeClients` (boto3 and kubernetes are imported only when a backend
    first asks for a client). ``cluster`` is the watch-fed cache of pods and nodes shared by the
    cluster producers, created by the service on first use (None until then).
    """

    clock: Clock
    settings: Any = None
    aws: Any = field(default_factory=_aws_clients)
    kube: Any = field(default_factory=_kube_clients)
    extras: dict[str, Any] = field(default_factory=dict)
