"""The registry: every type the models declare has an implementation or says it is not there yet."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from autoscaler import registry
from autoscaler.api import (
    BackendContext,
    MetricsProducer,
    Producer,
    Provider,
    ScalableNodeGroup,
)
from autoscaler.api.metricsproducer import SOURCE_FIELDS
from autoscaler.api.scalablenodegroup import NodeGroupType
from autoscaler.clock import FakeClock
from autoscaler.errors import NotAvailableError


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


DECLARED_SOURCES = tuple(camel(name) for name in SOURCE_FIELDS)
DECLARED_TYPES: tuple[str, ...] = get_args(NodeGroupType)

#: The smallest valid spec of each producer source.
MINIMAL_SOURCES: dict[str, dict[str, Any]] = {
    "queue": {
        "type": "AWSSQSQueue",
        "id": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
        "region": "us-east-1",
    },
    "cloudWatch": {"namespace": "AWS/SQS", "metricName": "NumberOfMessagesSent"},
    "schedule": {"defaultReplicas": 1},
    "reservedCapacity": {"nodeSelector": {"pool": "workers"}},
    "pendingCapacity": {"nodeGroup": "workers", "nodeSelector": {"pool": "workers"}},
}

#: A valid ``spec.id`` for each node group type.
MINIMAL_IDS: dict[str, str] = {
    "AWSEC2AutoScalingGroup": "workers-asg",
    "AWSEKSNodeGroup": "cluster/workers",
    "ClusterAPIMachineDeployment": "default/workers",
    "Simulated": "workers",
}


def producer_resource(source: str) -> MetricsProducer:
    return MetricsProducer.model_validate(
        {"metadata": {"name": "signal"}, "spec": {source: MINIMAL_SOURCES[source]}}
    )


def provider_resource(node_group_type: str) -> ScalableNodeGroup:
    return ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": node_group_type, "id": MINIMAL_IDS[node_group_type], "replicas": 1},
        }
    )


def context() -> BackendContext:
    return BackendContext(clock=FakeClock())


def test_every_declared_node_group_type_has_a_registry_entry() -> None:
    assert set(DECLARED_TYPES) <= set(registry.PROVIDERS)


def test_the_registry_names_no_node_group_type_the_models_do_not_declare() -> None:
    assert set(registry.PROVIDERS) <= set(DECLARED_TYPES)


def test_every_declared_producer_source_has_a_registry_entry_and_a_default_signal() -> None:
    assert set(DECLARED_SOURCES) <= set(registry.PRODUCERS)
    assert set(DECLARED_SOURCES) <= set(registry.DEFAULT_SIGNALS)


def test_the_registry_names_no_producer_source_the_models_do_not_declare() -> None:
    assert set(registry.PRODUCERS) <= set(DECLARED_SOURCES)
    assert set(registry.DEFAULT_SIGNALS) <= set(DECLARED_SOURCES)


def test_the_test_tables_cover_every_declared_type() -> None:
    assert set(MINIMAL_SOURCES) == set(DECLARED_SOURCES)
    assert set(MINIMAL_IDS) == set(DECLARED_TYPES)


AVAILABLE_SOURCES = [source for source in DECLARED_SOURCES if registry.PRODUCERS.get(source)]
AVAILABLE_TYPES = [kind for kind in DECLARED_TYPES if registry.PROVIDERS.get(kind)]


@pytest.mark.parametrize("source", AVAILABLE_SOURCES, ids=AVAILABLE_SOURCES)
def test_an_available_producer_is_built_by_its_factory(source: str) -> None:
    producer = registry.create_producer(producer_resource(source), context())
    assert isinstance(producer, Producer)


@pytest.mark.parametrize("kind", AVAILABLE_TYPES, ids=AVAILABLE_TYPES)
def test_an_available_provider_is_built_by_its_factory(kind: str) -> None:
    provider = registry.create_provider(provider_resource(kind), context())
    assert isinstance(provider, Provider)


@pytest.mark.parametrize("source", DECLARED_SOURCES, ids=DECLARED_SOURCES)
def test_a_producer_not_in_this_build_is_reported_with_its_path(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.PRODUCERS, source, None)  # as a build without it would be
    with pytest.raises(NotAvailableError, match="not available yet") as caught:
        registry.create_producer(producer_resource(source), context())
    assert caught.value.path == f"spec.{source}"


@pytest.mark.parametrize("kind", DECLARED_TYPES, ids=DECLARED_TYPES)
def test_a_provider_not_in_this_build_is_reported_with_its_path(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.PROVIDERS, kind, None)
    with pytest.raises(NotAvailableError, match="not available yet") as caught:
        registry.create_provider(provider_resource(kind), context())
    assert caught.value.path == "spec.type"
