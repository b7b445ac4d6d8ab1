"""The cluster cache and the reservedCapacity / pendingCapacity producers against the Kubernetes
API emulator over real HTTP: list + watch through the official client, 410 relists, reconnects,
and a pod turning unschedulable running its producer at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler import registry
from autoscaler.api import BackendContext, HorizontalAutoscaler, MetricsProducer
from autoscaler.clock import system_clock
from autoscaler.config import SpecSet
from autoscaler.errors import RetryableError
from autoscaler.kube import KubeClients
from autoscaler.kube.cache import ClusterCache
from autoscaler.loop import ControlLoop
from tests.cluster_objects import node, pod
from tests.k8s_emulator import KubeEmulator, kube
from tests.support import Backends, node_group

__all__ = ["kube"]  # the fixture, imported for pytest

pytestmark = pytest.mark.integration

GIB = 2.0**30


@pytest.fixture
def clients(kube: KubeEmulator, tmp_path: Path) -> Iterator[KubeClients]:
    clients = KubeClients(kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield clients
    clients.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait until ``check()`` is true; return the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true after {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - started


def synced(clients: KubeClients, kube: KubeEmulator) -> ClusterCache:
    cache = clients.cluster_cache()
    assert cache.wait_until_synced(5)
    kube.wait_for_watches(2)  # pods and nodes
    return cache


def seed(kube: KubeEmulator, *objects: dict[str, Any]) -> None:
    for obj in objects:
        kube.put_object(obj)


def producer_resource(name: str, source: dict[str, Any], interval: float = 15.0) -> MetricsProducer:
    return MetricsProducer.model_validate(
        {"metadata": {"name": name}, "spec": {"intervalSeconds": interval, **source}}
    )


# --------------------------------------------------------------------------- the cache


def test_the_cache_lists_in_pages_then_watches_from_the_list_version(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(kube, *(node(f"n{i}", labels={"pool": "w"}) for i in range(3)))
    seed(kube, *(pod(f"p{i}", cpu="100m", node_name=f"n{i % 3}") for i in range(1200)))
    seed(kube, *(pod(f"q{i}", cpu="1", pending=True) for i in range(30)))

    cache = synced(clients, kube)

    assert cache.counts() == {"nodes": 3, "pods": 1230, "pending": 30, "demands": 1}
    lists = [r for r in kube.requests if r.path == "/api/v1/pods" and "watch" not in r.query]
    assert [r.query.get("limit") for r in lists] == ["500", "500", "500"]
    watch = next(r for r in kube.requests if r.path == "/api/v1/pods" and "watch" in r.query)
    assert watch.query["resourceVersion"] == cache.stats()["pods"]["resourceVersion"]
    assert watch.query["allowWatchBookmarks"] == "true"


def test_pod_and_node_changes_arrive_through_the_watch(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(kube, node("n1", cpu="4"))
    cache = synced(clients, kube)

    kube.put_object(pod("a", cpu="1500m", node_name="n1"))
    eventually(lambda: cache.usage("n1").requests.get("cpu") == 1500)
    kube.put_object(node("n1", cpu="8"))
    eventually(lambda: (n := cache.node("n1")) is not None and n.allocatable["cpu"] == 8000)
    kube.delete_object("pods", "a")
    eventually(lambda: cache.usage("n1").pods == 0)
    kube.delete_object("nodes", "n1")
    eventually(lambda: cache.node("n1") is None)
    assert cache.stats()["pods"]["relists"] == 1


def test_a_410_gone_makes_the_cache_relist(clients: KubeClients, kube: KubeEmulator) -> None:
    seed(kube, node("n1"), pod("a", pending=True), pod("b", pending=True))
    cache = synced(clients, kube)

    # Hold the cache's next watches while the server moves on and forgets its history.
    kube.delay_next("GET", r"^/api/v1/(pods|nodes)$", 1.0, times=2)
    kube.close_watches()
    kube.put_object(pod("c", pending=True))
    kube.delete_object("pods", "a")
    kube.put_object(node("n2"))
    kube.compact()

    eventually(lambda: cache.stats()["pods"]["relists"] == 2)
    eventually(lambda: cache.stats()["nodes"]["relists"] == 2)
    assert [p.name for p in cache.pending_pods()] == ["b", "c"]
    assert [n.name for n, _ in cache.nodes()] == ["n1", "n2"]
    kube.wait_for_watches(2)
    kube.delete_object("pods", "b")
    eventually(lambda: [p.name for p in cache.pending_pods()] == ["c"])


def test_the_cache_reconnects_when_the_server_closes_its_watches(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(kube, node("n1"))
    cache = synced(clients, kube)
    watches = cache.stats()["pods"]["watches"]

    kube.close_watches()
    eventually(lambda: cache.stats()["pods"]["watches"] > watches)
    kube.wait_for_watches(2)
    kube.put_object(pod("late", pending=True))

    eventually(lambda: cache.counts()["pending"] == 1)
    assert cache.stats()["pods"]["relists"] == 1  # resumed from its version, no relist


def test_failing_watches_are_retried_with_backoff_and_reported_meanwhile(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(kube, node("n1"))
    cache = synced(clients, kube)
    cache.backoff_initial_seconds = 0.1
    kube.clear_requests()

    kube.fail_next("GET", r"^/api/v1/pods$", 503, times=3)
    kube.close_watches()
    eventually(lambda: cache.error is not None)
    assert cache.error is not None and cache.error.code == "ServiceUnavailable"
    assert "WATCH pods" in str(cache.error)
    eventually(lambda: cache.error is None, timeout=10)
    watches = [r for r in kube.requests if r.path == "/api/v1/pods" and "watch" in r.query]
    assert len(watches) == 4  # three refused, then resumed from the same version
    assert len({r.query["resourceVersion"] for r in watches}) == 1
    kube.wait_for_watches(2)
    kube.put_object(pod("after", pending=True))

    eventually(lambda: cache.counts()["pending"] == 1)


def test_an_unreachable_api_server_makes_observations_retryable(tmp_path: Path) -> None:
    with KubeEmulator() as emulator:
        path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    clients = KubeClients(kubeconfig=str(path))  # the server is gone
    context = BackendContext(clock=system_clock, kube=clients, aws=None)
    producer = registry.create_producer(
        producer_resource("r", {"reservedCapacity": {"nodeSelector": {}}}), context
    )
    try:
        cache = clients.cluster_cache()
        eventually(lambda: cache.error is not None)
        with pytest.raises(RetryableError, match="cache not synced yet: LIST") as caught:
            producer.observe(time.time())
        assert caught.value.code == "CacheNotSynced"
    finally:
        clients.close()


def test_closing_the_clients_stops_the_cache_threads(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    cache = synced(clients, kube)

    clients.close()

    assert not any(t.is_alive() for t in cache._threads)
    eventually(lambda: kube.open_watches == 0)


# --------------------------------------------------------------------------- the producers


def test_reserved_utilization_over_http(clients: KubeClients, kube: KubeEmulator) -> None:
    seed(
        kube,
        node("n1", cpu="4", memory="16Gi", labels={"pool": "w"}),
        node("n2", cpu="4", memory="16Gi", labels={"pool": "w"}),
        node("n3", cpu="4", memory="16Gi", labels={"pool": "w"}, ready=False),
        pod("a", cpu="3", memory="8Gi", node_name="n1"),
        pod("b", cpu="1", memory="4Gi", node_name="n2"),
        pod("c", cpu="1", memory="4Gi", node_name="n3"),
    )
    context = BackendContext(clock=system_clock, kube=clients, aws=None)
    producer = registry.create_producer(
        producer_resource("r", {"reservedCapacity": {"nodeSelector": {"pool": "w"}}}), context
    )
    synced(clients, kube)

    observation = producer.observe(time.time())

    got = {(s.name, s.labels.get("resource", "")): s.value for s in observation.signals}
    assert got[("utilization", "cpu")] == 50.0
    assert got[("utilization", "memory")] == 37.5
    assert got[("utilization", "pods")] == pytest.approx(100 * 2 / 220)
    assert got[("utilization", "")] == 50.0
    assert got[("reserved", "memory")] == 12 * GIB

    kube.put_object(pod("d", cpu="2", node_name="n2"))
    eventually(
        lambda: (
            producer.observe(time.time()).status["reservedCapacity"]["utilization"]["cpu"] == 75.0
        )
    )


def test_nodes_needed_from_a_learned_node_and_from_a_declared_shape_with_no_nodes(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(
        kube,
        node("w1", cpu="4", memory="16Gi", labels={"pool": "workers"}),
        pod("ds", cpu="1", node_name="w1", owner_kind="DaemonSet"),
        pod("app", cpu="1", node_name="w1"),
        *(pod(f"job-{i}", cpu="1500m", memory="1Gi", pending=True) for i in range(7)),
        *(
            pod(
                f"gpu-{i}",
                gpu=1,
                pending=True,
                node_selector={"accelerator": "nvidia"},
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
            )
            for i in range(3)
        ),
    )
    context = BackendContext(clock=system_clock, kube=clients, aws=None)
    learned = registry.create_producer(
        producer_resource(
            "workers",
            {"pendingCapacity": {"nodeGroup": "workers", "nodeSelector": {"pool": "workers"}}},
        ),
        context,
    )
    declared = registry.create_producer(
        producer_resource(
            "gpu",
            {
                "pendingCapacity": {
                    "nodeGroup": "gpu",
                    "nodeShape": {
                        "capacity": {"cpu": 8, "memory": "60Gi", "pods": 58, "nvidia.com/gpu": 2},
                        "labels": {"accelerator": "nvidia"},
                        "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                    },
                }
            },
        ),
        context,
    )
    synced(clients, kube)
    now = time.time()

    workers = learned.observe(now)
    gpus = declared.observe(now)

    # learned shape: 3 cores free of the DaemonSet → two 1.5-core jobs per node → 4 new + 1 busy
    assert {s.name: s.value for s in workers.signals} == {
        "nodes_needed": 5.0,
        "pending_pods": 7.0,
        "new_nodes": 4.0,
    }
    assert workers.status["pendingCapacity"]["shape"]["node"] == "w1"
    # declared, tainted shape, no node yet: 3 one-GPU pods on two-GPU nodes → 2 nodes
    assert {s.name: s.value for s in gpus.signals} == {
        "nodes_needed": 2.0,
        "pending_pods": 3.0,
        "new_nodes": 2.0,
    }
    assert gpus.status["pendingCapacity"]["groupNodes"] == 0


def test_a_pod_turning_unschedulable_runs_the_producer_at_once(
    clients: KubeClients, kube: KubeEmulator
) -> None:
    seed(kube, node("w1", cpu="4", labels={"pool": "workers"}), pod("app", node_name="w1"))
    backends = Backends()
    loop = ControlLoop(
        system_clock,
        context=BackendContext(clock=system_clock, kube=clients, aws=None),
        create_provider=backends.create_provider,
    )
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
    source = {"pendingCapacity": {"nodeGroup": "workers", "nodeSelector": {"pool": "workers"}}}
    loop.apply(
        SpecSet(
            node_groups={"default/workers": node_group("workers", replicas=1)},
            producers={"default/pending": producer_resource("pending", source, interval=600)},
            autoscalers={"default/a": hpa},
        )
    )
    stop = threading.Event()
    runner = threading.Thread(target=loop.run_forever, args=(stop, 0.5), daemon=True)
    runner.start()
    try:
        eventually(lambda: loop.producers["default/pending"].last_time is not None)  # synced
        kube.wait_for_watches(2)
        assert backends.providers["workers"].desired == 1

        for i in range(6):
            kube.put_object(pod(f"job-{i}", cpu="2", pending=True))
        took = eventually(lambda: backends.providers["workers"].desired == 4)
    finally:
        stop.set()
        loop.wake()
        runner.join(5)

    assert took < 2.0  # the producer's interval is 600 s
