"""Reserved capacity producer over a cluster cache fed by hand."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, HorizontalAutoscaler, MetricsProducer
from autoscaler.api.metricsproducer import MetricsProducerStatus
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import RetryableError
from autoscaler.kube.cache import ClusterCache
from autoscaler.loop import ControlLoop
from autoscaler.store import SignalStore
from producers.reserved_capacity import ReservedCapacityProducer, create
from tests.cluster_objects import node, pod
from tests.support import Backends, node_group

NOW = 1_767_225_600.0
GIB = 2.0**30


class FakeKube:
    """Stands in for KubeClients: hands out one cache."""

    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache
        self.calls = 0

    def cluster_cache(self) -> ClusterCache:
        self.calls += 1
        return self.cache


def producer_resource(selector: dict[str, str], name: str = "reserved") -> MetricsProducer:
    return MetricsProducer.model_validate(
        {"metadata": {"name": name}, "spec": {"reservedCapacity": {"nodeSelector": selector}}}
    )


def fed(*objects: dict[str, Any]) -> ClusterCache:
    cache = ClusterCache()
    for obj in objects:
        cache.apply(obj)
    cache.mark_synced()
    return cache


def producer(cache: ClusterCache, selector: dict[str, str]) -> ReservedCapacityProducer:
    context = BackendContext(clock=FakeClock(NOW), kube=FakeKube(cache), aws=None)
    return create(producer_resource(selector), context)


def values(observation: Any) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("resource", "")): s.value for s in observation.signals}


CLUSTER = (
    node("n1", cpu="4", memory="16Gi", pods="110", labels={"pool": "workers"}),
    node("n2", cpu="4", memory="16Gi", pods="110", gpu=2, labels={"pool": "workers"}),
    node("other", cpu="64", labels={"pool": "other"}),
    node("not-ready", cpu="64", labels={"pool": "workers"}, ready=False),
    node("cordoned", cpu="64", labels={"pool": "workers"}, unschedulable=True),
    node("leaving", cpu="64", labels={"pool": "workers"}, deleting=True),
    pod("a", cpu="2", memory="4Gi", node_name="n1"),
    pod("b", cpu="1", memory="4Gi", gpu=1, node_name="n2"),
    pod(
        "init",
        cpu="500m",
        node_name="n2",
        init_containers=[
            {"name": "setup", "resources": {"requests": {"cpu": "3", "memory": "8Gi"}}}
        ],
        overhead={"cpu": "100m"},
    ),
    pod("ds", cpu="100m", memory="100Mi", node_name="n1", owner_kind="DaemonSet"),
    pod("done", cpu="4", node_name="n1", phase="Succeeded"),
    pod("failed", cpu="4", node_name="n2", phase="Failed"),
    pod("pending", cpu="4", pending=True),
    pod("elsewhere", cpu="32", node_name="other"),
    pod("unready", cpu="32", node_name="not-ready"),
)


def test_reserved_and_capacity_sum_over_ready_schedulable_selected_nodes() -> None:
    observation = producer(fed(*CLUSTER), {"pool": "workers"}).observe(NOW)

    got = values(observation)
    # n1: a 2 + ds 0.1; n2: b 1 + init max(0.5, 3) + overhead 0.1 → 6.2 of 8 cores
    assert got[("reserved", "cpu")] == pytest.approx(6.2)
    assert got[("capacity", "cpu")] == 8.0
    assert got[("utilization", "cpu")] == pytest.approx(77.5)
    memory = 4 * GIB + 100 * 2**20 + 4 * GIB + 8 * GIB
    assert got[("reserved", "memory")] == memory
    assert got[("utilization", "memory")] == pytest.approx(100 * memory / (32 * GIB))
    assert got[("reserved", "pods")] == 4.0
    assert got[("capacity", "pods")] == 220.0
    assert got[("reserved", "nvidia.com/gpu")] == 1.0
    assert got[("utilization", "nvidia.com/gpu")] == 50.0
    # the unlabelled utilization is the busiest resource
    assert got[("utilization", "")] == pytest.approx(77.5)
    status = observation.status["reservedCapacity"]
    assert status["nodes"] == 2
    assert status["capacity"]["cpu"] == 8.0


def test_every_resource_has_exactly_one_signal_of_each_kind() -> None:
    observation = producer(fed(*CLUSTER), {"pool": "workers"}).observe(NOW)

    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in observation.signals]
    assert len(keys) == len(set(keys)) == 1 + 3 * 4
    assert {dict(labels).get("resource") for _, labels in keys} == {
        None,
        "cpu",
        "memory",
        "pods",
        "nvidia.com/gpu",
    }


def test_the_main_signal_is_unambiguous_in_the_store_and_labels_select_one_resource() -> None:
    observation = producer(fed(*CLUSTER), {"pool": "workers"}).observe(NOW)
    store = SignalStore()
    store.put("default/reserved", observation.signals)

    main = registry.DEFAULT_SIGNALS["reservedCapacity"]
    assert store.get("default/reserved", main).value == pytest.approx(77.5)
    assert store.get("default/reserved", main, {"resource": "pods"}).value == pytest.approx(
        100 * 4 / 220
    )


def test_an_empty_selector_counts_every_node() -> None:
    observation = producer(fed(*CLUSTER), {}).observe(NOW)

    assert observation.status["reservedCapacity"]["nodes"] == 3
    assert values(observation)[("capacity", "cpu")] == 8.0 + 64


def test_no_matching_node_gives_zero_utilization() -> None:
    observation = producer(fed(*CLUSTER), {"pool": "none"}).observe(NOW)

    got = values(observation)
    assert got[("utilization", "")] == 0.0
    assert got[("utilization", "cpu")] == 0.0
    assert got[("capacity", "memory")] == 0.0


def test_a_resource_the_nodes_lack_does_not_count_in_the_main_signal() -> None:
    cache = fed(node("n1", cpu="4", labels={"pool": "x"}), pod("a", cpu="1", node_name="n1"))

    got = values(producer(cache, {"pool": "x"}).observe(NOW))

    assert got[("utilization", "nvidia.com/gpu")] == 0.0
    assert got[("utilization", "")] == 25.0  # cpu; the GPU resource is absent, not idle


def test_observing_before_the_first_sync_is_retryable() -> None:
    with pytest.raises(RetryableError, match="cache not synced yet"):
        producer(ClusterCache(), {}).observe(NOW)


def test_the_status_fragment_fits_the_status_model() -> None:
    observation = producer(fed(*CLUSTER), {"pool": "workers"}).observe(NOW)

    status = MetricsProducerStatus.model_validate(dict(observation.status))

    assert status.reserved_capacity is not None
    assert status.reserved_capacity.utilization["cpu"] == pytest.approx(77.5)


def test_creating_the_producer_makes_no_request() -> None:
    kube = FakeKube(ClusterCache())
    context = BackendContext(clock=FakeClock(NOW), kube=kube, aws=None)

    registry.create_producer(producer_resource({}), context)

    assert kube.calls == 0


def test_an_autoscaler_with_a_utilization_target_reads_the_main_signal() -> None:
    cache = fed(*CLUSTER)
    clock = FakeClock(NOW)
    backends = Backends()
    loop = ControlLoop(
        clock,
        context=BackendContext(clock=clock, kube=FakeKube(cache), aws=None),
        create_provider=backends.create_provider,
    )
    hpa = HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "a"},
            "spec": {
                "scaleTargetRef": {"name": "g"},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "producer": {"name": "reserved"},
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    }
                ],
            },
        }
    )
    loop.apply(
        SpecSet(
            node_groups={"default/g": node_group(replicas=2)},
            producers={"default/reserved": producer_resource({"pool": "workers"})},
            autoscalers={"default/a": hpa},
        )
    )

    loop.run_once()

    assert backends.providers["g"].desired == 4  # ceil(2 × 77.5 / 50)
