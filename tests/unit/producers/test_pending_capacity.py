"""Pending capacity producer over a cluster cache fed by hand."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, HorizontalAutoscaler, MetricsProducer
from autoscaler.api.metricsproducer import MetricsProducerStatus
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import PermanentError, RetryableError, SpecError
from autoscaler.kube.cache import ClusterCache
from autoscaler.loop import ControlLoop
from producers.pending_capacity import PendingCapacityProducer, create, validate
from tests.cluster_objects import affinity_in, node, pod
from tests.support import Backends, node_group

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RECENT = "2025-12-31T23:58:00Z"  # two minutes before NOW
LONG_AGO = "2025-12-01T00:00:00Z"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


class FakeKube:
    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache

    def cluster_cache(self) -> ClusterCache:
        return self.cache


def resource(name: str = "pending", interval: float = 15.0, **spec: Any) -> MetricsProducer:
    body = {"nodeGroup": "workers", **spec}
    return MetricsProducer.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"intervalSeconds": interval, "pendingCapacity": body},
        }
    )


def fed(*objects: dict[str, Any]) -> ClusterCache:
    cache = ClusterCache()
    for obj in objects:
        cache.apply(obj)
    cache.mark_synced()
    return cache


def make(
    cache: ClusterCache, trigger: Any = None, **spec: Any
) -> tuple[PendingCapacityProducer, BackendContext]:
    extras = {"trigger": trigger} if trigger is not None else {}
    context = BackendContext(clock=FakeClock(NOW), kube=FakeKube(cache), aws=None, extras=extras)
    return create(resource(**spec), context), context


def figures(observation: Any) -> dict[str, float]:
    return {s.name: s.value for s in observation.signals}


SELECTOR: dict[str, Any] = {"nodeSelector": {"pool": "workers"}}
DECLARED: dict[str, Any] = {
    "nodeSelector": {"pool": "workers"},
    "nodeShape": {
        "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
        "labels": {"pool": "workers"},
    },
}


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "spec.pendingCapacity.nodeSelector"),
        ({"nodeShape": {"capacity": {"cpu": 4}}}, "spec.pendingCapacity.nodeSelector"),
        (
            {"nodeShape": {"capacity": {"cpu": 0}, "labels": {"pool": "w"}}},
            "spec.pendingCapacity.nodeShape.capacity",
        ),
        (
            {"nodeShape": {"capacity": {"cpu": "-1"}, "labels": {"pool": "w"}}},
            'spec.pendingCapacity.nodeShape.capacity["cpu"]',
        ),
    ],
    ids=[
        "no way to recognise the group",
        "a shape without labels",
        "a shape that offers nothing",
        "a negative quantity",
    ],
)
def test_an_unusable_spec_is_a_spec_error_with_its_path(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate(resource(**spec))
    assert caught.value.path == path
    with pytest.raises(SpecError):
        registry.validate_producer(resource(**spec))


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeSelector": {"pool": "workers"}},
        {"nodeSelector": {}},
        {"nodeShape": {"capacity": {"cpu": 4}, "labels": {"pool": "workers"}}},
    ],
    ids=["a node selector", "an explicit empty selector: every node", "the shape's labels"],
)
def test_a_group_is_recognised_by_its_selector_or_its_shape_labels(spec: dict[str, Any]) -> None:
    validate(resource(**spec))


# --------------------------------------------------------------------------- figures


def test_a_learned_shape_leaves_room_for_daemonsets_and_counts_busy_nodes() -> None:
    cache = fed(
        node("w1", cpu="4", labels={"pool": "workers"}),
        pod("ds", cpu="500m", node_name="w1", owner_kind="DaemonSet"),
        pod("app", cpu="1", node_name="w1"),
        *(pod(f"job-{i}", cpu="2", pending=True) for i in range(3)),
    )
    producer, _ = make(cache, **SELECTOR)

    observation = producer.observe(NOW)

    # shape: 3.5 cores free of DaemonSets → one 2-core pod per new node
    assert figures(observation) == {"nodes_needed": 4.0, "pending_pods": 3.0, "new_nodes": 3.0}
    status = observation.status["pendingCapacity"]
    assert status["shape"] == {
        "source": "Learned",
        "node": "w1",
        "capacity": {"cpu": 3.5, "memory": 16 * 2**30, "pods": 109.0},
    }
    assert (status["groupNodes"], status["busyNodes"], status["startingNodes"]) == (1, 1, 0)


def test_a_declared_shape_lets_a_group_scale_from_zero() -> None:
    cache = fed(*(pod(f"job-{i}", cpu="1", memory="1Gi", pending=True) for i in range(9)))
    producer, _ = make(cache, **DECLARED)

    observation = producer.observe(NOW)

    assert figures(observation) == {"nodes_needed": 3.0, "pending_pods": 9.0, "new_nodes": 3.0}
    assert observation.status["pendingCapacity"]["shape"]["source"] == "Declared"


@pytest.mark.parametrize(
    ("pending_pod", "hosted"),
    [
        (pod("p", cpu="1", pending=True), True),
        (pod("p", cpu="1", pending=True, node_selector={"pool": "workers"}), True),
        (pod("p", cpu="1", pending=True, node_selector={"pool": "gpu"}), False),
        (pod("p", cpu="1", pending=True, affinity=affinity_in("zone", "a", "b")), True),
        (pod("p", cpu="1", pending=True, affinity=affinity_in("zone", "c")), False),
    ],
    ids=["no constraint", "matching selector", "other selector", "affinity In", "affinity out"],
)
def test_only_pods_the_group_could_host_count(pending_pod: dict[str, Any], hosted: bool) -> None:
    cache = fed(pending_pod)
    shape = {
        "nodeShape": {"capacity": {"cpu": 4}, "labels": {"pool": "workers", "zone": "a"}},
    }
    producer, _ = make(cache, **shape)

    assert figures(producer.observe(NOW))["pending_pods"] == (1.0 if hosted else 0.0)


def test_a_tainted_group_hosts_only_pods_that_tolerate_its_taint() -> None:
    cache = fed(
        pod("plain", cpu="1", pending=True),
        pod("gpu-job", gpu=1, pending=True, tolerations=TOLERATE_GPU),
        pod("gpu-job-2", gpu=1, pending=True, tolerations=TOLERATE_GPU),
    )
    spec = {
        "nodeShape": {
            "capacity": {"cpu": 8, "memory": "60Gi", "pods": 58, "nvidia.com/gpu": 1},
            "labels": {"accelerator": "nvidia"},
            "taints": [GPU_TAINT],
        }
    }
    producer, _ = make(cache, **spec)

    assert figures(producer.observe(NOW)) == {
        "nodes_needed": 2.0,
        "pending_pods": 2.0,
        "new_nodes": 2.0,
    }


def test_pods_too_large_for_one_node_are_reported_and_not_counted() -> None:
    cache = fed(pod("huge", cpu="64", pending=True), pod("small", cpu="1", pending=True))
    producer, _ = make(cache, **DECLARED)

    observation = producer.observe(NOW)

    assert figures(observation) == {"nodes_needed": 1.0, "pending_pods": 1.0, "new_nodes": 1.0}
    assert observation.status["pendingCapacity"]["oversizedPods"] == 1


def test_daemonset_pods_pinned_to_a_node_open_no_new_node() -> None:
    pinned = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]}
                ]
            }
        }
    }
    cache = fed(pod("ds-w1", cpu="1", pending=True, affinity=pinned, owner_kind="DaemonSet"))
    producer, _ = make(cache, **DECLARED)

    assert figures(producer.observe(NOW))["new_nodes"] == 0.0


def test_starting_nodes_take_pending_pods_before_new_nodes_are_counted() -> None:
    cache = fed(
        node("w1", labels={"pool": "workers"}, ready=False, created=RECENT),
        node("w2", labels={"pool": "workers"}, ready=False, created=RECENT),
        node("broken", labels={"pool": "workers"}, ready=False, created=LONG_AGO),
        *(pod(f"job-{i}", cpu="2", pending=True) for i in range(5)),
    )
    producer, _ = make(cache, **DECLARED)

    observation = producer.observe(NOW)

    # two starting 4-core nodes take four pods; the fifth needs one new node
    assert figures(observation) == {"nodes_needed": 3.0, "pending_pods": 5.0, "new_nodes": 1.0}
    status = observation.status["pendingCapacity"]
    assert (status["groupNodes"], status["startingNodes"], status["busyNodes"]) == (3, 2, 0)


def test_idle_nodes_are_not_needed_and_busy_ones_are() -> None:
    cache = fed(
        node("w1", labels={"pool": "workers"}),
        node("w2", labels={"pool": "workers"}),
        node("w3", labels={"pool": "workers"}),
        pod("ds-1", cpu="100m", node_name="w1", owner_kind="DaemonSet"),
        pod("ds-2", cpu="100m", node_name="w2", owner_kind="DaemonSet"),
        pod("app", cpu="1", node_name="w2"),
        node("leaving", labels={"pool": "workers"}, deleting=True),
        pod("draining", cpu="1", node_name="leaving"),
    )
    producer, _ = make(cache, **SELECTOR)

    observation = producer.observe(NOW)

    assert figures(observation) == {"nodes_needed": 1.0, "pending_pods": 0.0, "new_nodes": 0.0}
    assert observation.status["pendingCapacity"]["groupNodes"] == 3


def test_without_a_shape_pending_pods_are_an_error_and_no_pods_are_zero() -> None:
    producer, _ = make(fed(), **SELECTOR)
    assert figures(producer.observe(NOW))["nodes_needed"] == 0.0

    producer, _ = make(fed(pod("p", cpu="1", pending=True)), **SELECTOR)
    with pytest.raises(PermanentError, match=r"declare spec\.pendingCapacity\.nodeShape") as caught:
        producer.observe(NOW)
    assert caught.value.code == "NoNodeShape"


def test_a_learned_shape_is_remembered_when_the_group_scales_to_zero() -> None:
    cache = fed(node("w1", cpu="4", labels={"pool": "workers"}))
    producer, _ = make(cache, **SELECTOR)
    producer.observe(NOW)

    cache.delete(node("w1"))
    cache.apply(pod("p", cpu="3", pending=True))
    observation = producer.observe(NOW)

    assert figures(observation)["new_nodes"] == 1.0
    assert observation.status["pendingCapacity"]["shape"]["node"] == "w1"


def test_observing_before_the_first_sync_is_retryable() -> None:
    producer, _ = make(ClusterCache(), **SELECTOR)

    with pytest.raises(RetryableError, match="cache not synced yet"):
        producer.observe(NOW)


def test_the_status_fragment_fits_the_status_model() -> None:
    cache = fed(node("w1", labels={"pool": "workers"}), pod("p", cpu="1", pending=True))
    producer, _ = make(cache, **SELECTOR)

    status = MetricsProducerStatus.model_validate(dict(producer.observe(NOW).status))

    assert status.pending_capacity is not None
    assert status.pending_capacity.shape is not None
    assert status.pending_capacity.shape.node == "w1"


# --------------------------------------------------------------------------- wake-up


def test_a_pod_turning_unschedulable_triggers_the_producer_at_once() -> None:
    cache = fed()
    triggered: list[str] = []
    producer, _ = make(cache, trigger=triggered.append, **DECLARED)
    producer.observe(NOW)  # subscribes

    cache.apply(pod("p", cpu="1"))
    assert triggered == []
    cache.apply(pod("p", cpu="1", pending=True))
    assert triggered == ["default/pending"]
    cache.apply(pod("p", cpu="1", node_name="w1"))
    assert triggered == ["default/pending"] * 2


def test_a_pod_the_group_cannot_host_does_not_trigger_it() -> None:
    cache = fed()
    triggered: list[str] = []
    producer, _ = make(cache, trigger=triggered.append, **DECLARED)
    producer.observe(NOW)

    cache.apply(pod("p", cpu="1", pending=True, node_selector={"pool": "gpu"}))

    assert triggered == []


def test_a_dropped_producer_stops_listening() -> None:
    cache = fed()
    producer, _ = make(cache, trigger=lambda key: None, **DECLARED)
    producer.observe(NOW)
    assert len(cache._listeners) == 1

    del producer
    gc.collect()
    cache.apply(pod("p", pending=True))

    assert cache._listeners == []


def test_the_loop_reruns_a_triggered_producer_before_its_interval() -> None:
    cache = fed(node("w1", cpu="4", labels={"pool": "workers"}), pod("app", node_name="w1"))
    clock = FakeClock(NOW)
    backends = Backends()
    context = BackendContext(clock=clock, kube=FakeKube(cache), aws=None)
    loop = ControlLoop(clock, context=context, create_provider=backends.create_provider)
    hpa = HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "a"},
            "spec": {
                "scaleTargetRef": {"name": "workers"},
                "minReplicas": 1,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "producer": {"name": "pending"},
                        "target": {"type": "AverageValue", "averageValue": 1},
                    }
                ],
            },
        }
    )
    loop.apply(
        SpecSet(
            node_groups={"default/workers": node_group("workers", replicas=1)},
            producers={"default/pending": resource(interval=600, **SELECTOR)},
            autoscalers={"default/a": hpa},
        )
    )
    loop.run_once()
    assert backends.providers["workers"].desired == 1

    for i in range(6):
        cache.apply(pod(f"job-{i}", cpu="2", pending=True))  # wakes the loop at once
    clock.advance(1)  # far from the 600 s interval
    loop.run_once()

    # one busy node + three new nodes of two pods each
    assert backends.providers["workers"].desired == 4
