"""Maps each spec ``type`` to the module that implements it.

Implementations are named as ``"module:factory"`` strings and imported only when a spec uses
them, so heavy clients (boto3, kubernetes) cost nothing until needed. A type that is valid in the
API but whose backend is not in this build maps to ``None`` and fails validation with a
:class:`~autoscaler.errors.NotAvailableError`.

A factory is called as ``factory(resource, context)`` with the validated resource model and a
:class:`~autoscaler.api.BackendContext`, and returns a ``Producer`` or a ``Provider``. A backend
module may also define ``validate(resource)``, which raises a
:class:`~autoscaler.errors.SpecError` for values only that backend understands (the form of an id);
``autoscaler validate`` and the spec loader call it without creating any client.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, get_args

from autoscaler.api import (
    BackendContext,
    MetricsProducer,
    Producer,
    Provider,
    ScalableNodeGroup,
)
from autoscaler.api.scalablenodegroup import NodeGroupType
from autoscaler.errors import NotAvailableError

#: Producer source (the camelCase spec field) → implementation.
PRODUCERS: dict[str, str | None] = {
    "schedule": "producers.schedule:create",
    "queue": "producers.sqs:create",
    "cloudWatch": "producers.cloudwatch:create",
    "reservedCapacity": "producers.reserved_capacity:create",
    "pendingCapacity": "producers.pending_capacity:create",
}

#: Provider ``spec.type`` → implementation.
PROVIDERS: dict[str, str | None] = {
    "Simulated": "providers.simulated:create",
    "AWSEC2AutoScalingGroup": "providers.aws_asg:create",
    "AWSEKSNodeGroup": "providers.aws_eks:create",
    "ClusterAPIMachineDeployment": "providers.cluster_api:create",
}

#: The signal a ``producer`` metric reads when it names no ``metric``.
DEFAULT_SIGNALS: dict[str, str] = {
    "schedule": "replicas",
    "queue": "queue_length",
    "cloudWatch": "value",
    "reservedCapacity": "utilization",
    "pendingCapacity": "nodes_needed",
}

DECLARED_PROVIDER_TYPES: tuple[str, ...] = get_args(NodeGroupType)


def _load(target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return factory


def check_producer_available(resource: MetricsProducer) -> None:
    source = resource.spec.source
    if PRODUCERS.get(source) is None:
        raise NotAvailableError(
            f"producer source {source} is not available yet in this version",
            path=f"spec.{source}",
        )


def check_provider_available(resource: ScalableNodeGroup) -> None:
    if PROVIDERS.get(resource.spec.type) is None:
        raise NotAvailableError(
            f"node group type {resource.spec.type} is not available yet in this version",
            path="spec.type",
        )


def _validate(target: str, resource: MetricsProducer | ScalableNodeGroup) -> None:
    module = importlib.import_module(target.partition(":")[0])
    validate = getattr(module, "validate", None)
    if validate is not None:
        validate(resource)


def validate_producer(resource: MetricsProducer) -> None:
    """Availability, then the backend's own checks (e.g. the form of a queue id), without
    creating clients. Raises :class:`~autoscaler.errors.SpecError` with the field path."""
    check_producer_available(resource)
    target = PRODUCERS[resource.spec.source]
    assert target is not None
    _validate(target, resource)


def validate_provider(resource: ScalableNodeGroup) -> None:
    """Availability, then the backend's own checks (e.g. the form of an ASG ARN)."""
    check_provider_available(resource)
    target = PROVIDERS[resource.spec.type]
    assert target is not None
    _validate(target, resource)


def create_producer(resource: MetricsProducer, context: BackendContext) -> Producer:
    check_producer_available(resource)
    target = PRODUCERS[resource.spec.source]
    assert target is not None
    producer: Producer = _load(target)(resource, context)
    return producer


def create_provider(resource: ScalableNodeGroup, context: BackendContext) -> Provider:
    check_provider_available(resource)
    target = PROVIDERS[resource.spec.type]
    assert target is not None
    provider: Provider = _load(target)(resource, context)
    return provider
